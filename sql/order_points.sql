-- The source documents' order -> points scenario (examples/order_points.sql)
-- as a regression test: the worker resolves the check-backs and runs the
-- handler; the script waits for outcomes, and leaves out what varies
-- between runs (process ids, the notification's message id).
\set regress 1
\i examples/order_points.sql
