-- The shape of the extension's relations: loading the catalog (and loading
-- a relation again after any change to it) checks that every table is a
-- heap table with as many columns as the C code numbers, and every index a
-- btree, so a relation that no longer matches is an error instead of rows
-- misread or written with the wrong access method.
\set VERBOSITY terse
SELECT tx_create_topic('cat.events');
SELECT tx_subscribe('cat.events', 'cat.group');

-- core's heap handler under another name is another access method
CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler;
BEGIN;
ALTER TABLE tx_message.leases SET ACCESS METHOD heap2;
SELECT count(*) FROM tx_receive('cat.group');
ROLLBACK;
BEGIN;
ALTER TABLE tx_message.log_1 SET ACCESS METHOD heap2;
SELECT tx_send('cat.events', '{"n": 1}');
ROLLBACK;

-- a column more than the C code knows
BEGIN;
ALTER TABLE tx_message.ticks ADD COLUMN extra integer;
SELECT tx_send('cat.events', '{"n": 2}');
ROLLBACK;

-- an index that is not a btree
BEGIN;
DROP INDEX tx_message.log_0_pos;
CREATE INDEX log_0_pos ON tx_message.log_0 USING hash (pos);
SELECT tx_send('cat.events', '{"n": 4}');
ROLLBACK;

-- rolled back, everything works as before
SELECT tx_send('cat.events', '{"n": 5}') > 0 AS sent;
SELECT payload FROM tx_receive('cat.group', wait => '5 s');
DROP ACCESS METHOD heap2;
SELECT tx_drop_topic('cat.events', "cascade" => true);
