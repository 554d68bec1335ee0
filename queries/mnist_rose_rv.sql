-- MNIST, digit 9 against digit 8: Algorithm 2 (rose-rv, which needs no trusted central
-- machine) with K = 5, next to the plain average of the local fits, through rose_fit.
-- Run it with: rose sql -f queries/mnist_rose_rv.sql

WITH robust AS (
    SELECT name, estimate, std_error
    FROM rose_fit('data/mnist-8-9', 'logistic', 'y',
        'estimator=rose-rv, k=5, features=r18_c19 r21_c14 r17_c18 r19_c16 r15_c15 r11_c18 r14_c11 r10_c12 r09_c18 r16_c10 r16_c19 r10_c16 r11_c17 r10_c07 r11_c20')
),
average AS (
    SELECT name, estimate
    FROM rose_fit('data/mnist-8-9', 'logistic', 'y',
        'estimator=avg, features=r18_c19 r21_c14 r17_c18 r19_c16 r15_c15 r11_c18 r14_c11 r10_c12 r09_c18 r16_c10 r16_c19 r10_c16 r11_c17 r10_c07 r11_c20')
)
SELECT r.name,
       r.estimate AS rose_rv,
       r.std_error AS rose_rv_std_error,
       a.estimate AS avg
FROM robust r JOIN average a ON r.name = a.name;
