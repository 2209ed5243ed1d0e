-- Change data capture: switched on and off by tx_cdc_enable() and
-- tx_cdc_disable(), an administrator's tools, and only with wal_level =
-- logical (the decoding itself is tested by t/016_cdc.pl).
\set VERBOSITY terse
SHOW wal_level;
SELECT tx_cdc_enable();
\echo :SQLSTATE
SELECT cdc AS still_off FROM tx_message.instance;
SELECT tx_cdc_disable();
SELECT cdc FROM tx_message.instance;
CREATE ROLE cdc_stranger;
SET ROLE cdc_stranger;
SELECT tx_cdc_enable();
\echo :SQLSTATE
SELECT tx_cdc_disable();
\echo :SQLSTATE
RESET ROLE;
DROP ROLE cdc_stranger;
BEGIN TRANSACTION READ ONLY;
SELECT tx_cdc_disable();
\echo :SQLSTATE
ROLLBACK;
