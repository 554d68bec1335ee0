-- MNIST, digit 9 against digit 8: Algorithm 2 (rose-rv, which needs no trusted central
-- machine) with K = 5, next to the plain average of the local fits, through rose_fit.
-- Run it with: rose sql -f queries/mnist_rose_rv.sql

WITH robust AS (
    SELECT name, estimate, std_error
    FROM rose_fit('data/mnist-8-9', 'logistic', 'y',
        'estimator=rose-rv, k=5, features=r10_c21 r08_c20 r22_c16 r21_c12 r17_c17 r10_c09 r14_c16 r07_c14 r09_c17 r11_c07 r09_c11 r16_c18 r16_c11 r12_c18 r13_c11')
),
average AS (
    SELECT name, estimate
    FROM rose_fit('data/mnist-8-9', 'logistic', 'y',
        'estimator=avg, features=r10_c21 r08_c20 r22_c16 r21_c12 r17_c17 r10_c09 r14_c16 r07_c14 r09_c17 r11_c07 r09_c11 r16_c18 r16_c11 r12_c18 r13_c11')
)
SELECT r.name,
       r.estimate AS rose_rv,
       r.std_error AS rose_rv_std_error,
       a.estimate AS avg
FROM robust r JOIN average a ON r.name = a.name;
