-- one round trip between pgbench and its backend, doing nothing
SELECT 1;
