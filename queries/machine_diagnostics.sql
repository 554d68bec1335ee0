-- Which machines look wrong? Each machine's local estimate is compared with the VRMOL
-- aggregate (Algorithm 2 scales, so no machine is trusted) coordinate by coordinate, in
-- units of that machine's standard error sqrt(median variance / rows). Byzantine machines
-- sit many standard errors away; honest ones rarely beyond 4.
-- Run it with: rose sql -f queries/machine_diagnostics.sql

WITH fits AS (
    SELECT machine, rose_local_fit('logistic', y, r06_c17, r13_c09, r12_c10, r15_c13, r21_c18, r16_c18, r16_c14, r14_c18, r22_c12, r18_c14, r07_c11, r16_c12, r14_c12, r13_c19, r15_c08) AS fit
    FROM mnist_6_9
    GROUP BY machine
),
aggregate AS (
    SELECT rose_vrmol_rv(fit['estimate'], fit['rows'], fit['variance'], 10) AS theta,
           rose_median(fit['variance']) AS variance
    FROM fits
),
distances AS (
    SELECT f.machine,
           f.fit['rows'] AS rows,
           unnest(f.fit['estimate']) AS local_value,
           unnest(a.theta) AS aggregate_value,
           unnest(a.variance) AS variance
    FROM fits f CROSS JOIN aggregate a
)
SELECT machine,
       max(rows) AS rows,
       max(abs(local_value - aggregate_value) / sqrt(variance / rows)) AS max_abs_z
FROM distances
GROUP BY machine
ORDER BY max_abs_z DESC;
