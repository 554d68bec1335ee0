-- The whole robust one-step estimate in one call: the table function rose_fit runs both
-- rounds over a Parquet directory and returns the coefficient table. Options use the
-- names of `rose fit`'s flags; features are separated by spaces because commas separate
-- the options.
-- Run it with: rose sql -f queries/rose_fit_one_call.sql

SELECT name, estimate, std_error, z, p_value, ci_low, ci_high
FROM rose_fit(
    'data/logistic-m11', 'logistic', 'y',
    'estimator=rose, k=10, intercept=false'
);
