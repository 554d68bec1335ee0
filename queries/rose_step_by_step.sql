-- The robust one-step estimator (Algorithm 1 of Wang, Zhu and Zhu, "Byzantine-robust
-- distributed one-step estimation") written out step by step, for a logistic regression
-- of MNIST digit 9 against digit 6 on ten machines. It returns the same estimate as
--   rose fit data/mnist-6-9 --features-file data/mnist-6-9/features.txt
-- Run it with: rose sql -f queries/rose_step_by_step.sql

WITH
-- Round 1: every machine fits its own logistic regression.
fits AS (
    SELECT machine,
           rose_local_fit('logistic', y, r06_c17, r13_c09, r12_c10, r15_c13, r21_c18, r16_c18, r16_c14, r14_c18, r22_c12, r18_c14, r07_c11, r16_c12, r14_c12, r13_c19, r15_c08) AS fit
    FROM mnist_6_9
    GROUP BY machine
),
-- The coordinate-wise median of the local estimates.
median_start AS (
    SELECT rose_median(fit['estimate']) AS theta FROM fits
),
-- Eq. (5): the central machine (00) computes sandwich scales at the median from its rows.
central_scales AS (
    SELECT rose_sandwich_scale(
               rose_local_derivatives('logistic', m.theta, y, r06_c17, r13_c09, r12_c10, r15_c13, r21_c18, r16_c18, r16_c14, r14_c18, r22_c12, r18_c14, r07_c11, r16_c12, r14_c12, r13_c19, r15_c08)
           ) AS scale
    FROM mnist_6_9 CROSS JOIN median_start m
    WHERE machine = '00'
),
-- Eq. (8): VRMOL of the local estimates, K = 10.
start AS (
    SELECT rose_vrmol(fit['estimate'], fit['rows'], s.scale, 10) AS theta
    FROM fits CROSS JOIN central_scales s
),
-- Round 2: every machine's gradient and Hessian at the VRMOL start.
derivatives AS (
    SELECT machine,
           rose_local_derivatives('logistic', s.theta, y, r06_c17, r13_c09, r12_c10, r15_c13, r21_c18, r16_c18, r16_c14, r14_c18, r22_c12, r18_c14, r07_c11, r16_c12, r14_c12, r13_c19, r15_c08) AS d
    FROM mnist_6_9 CROSS JOIN start s
    GROUP BY machine
),
-- Eq. (16) and (17): VRMOL of the gradients and Hessians, with the central machine's
-- own variances (eq. 14 and 15) as scales.
central_own AS (
    SELECT d FROM derivatives WHERE machine = '00'
),
combined AS (
    SELECT rose_vrmol(v.d['gradient'], v.d['rows'],
                      rose_sqrt(rose_diagonal(c.d['gradient_covariance'])), 10) AS gradient,
           rose_vrmol(v.d['hessian'], v.d['rows'],
                      rose_sqrt(c.d['hessian_variance']), 10) AS hessian
    FROM derivatives v CROSS JOIN central_own c
)
-- Eq. (19): one Newton step from the start.
SELECT rose_one_step(s.theta, c.gradient, c.hessian) AS estimate
FROM start s CROSS JOIN combined c;
