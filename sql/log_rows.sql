-- The log's rows leave out their trailing NULL columns: an ordinary message
-- has no null bitmap, and reads back with every column where it belongs.
\set VERBOSITY terse
CREATE EXTENSION pageinspect;
SELECT tx_create_topic('rows');
SELECT tx_subscribe('rows', 'rows_g');

-- the log table's columns: fixed width first, the usually NULL ones last
SELECT attnum, attname FROM pg_attribute
 WHERE attrelid = 'tx_message.log_0'::regclass AND attnum > 0 ORDER BY attnum;

SELECT tx_send('rows', '{"n": 1}') AS m1 \gset
SELECT tx_send('rows', '{"n": 2}', key => 'k2') AS m2 \gset
SELECT tx_send('rows', '{"n": 3}', headers => '{"h": 3}') AS m3 \gset
SELECT tx_send('rows', '{"n": 4}', key => 'k4', tags => '{a,b}', headers => '{"h": 4}') AS m4 \gset
SELECT count(*) AS sent FROM tx_send_batch('rows', ARRAY['{"n": 5}', '{"n": 6}']::jsonb[], keys => '{k5,NULL}');
SELECT tx_send_half('rows', '{"n": 7}', key => 'k7') AS m7 \gset
SELECT tx_commit_half(:m7);
SELECT tx_send('rows', '{"n": 8}', tags => '{late}', delay => '200 ms') AS m8 \gset

-- wait until the worker moved the delayed message into the log
DO $$
BEGIN
	FOR i IN 1..200 LOOP
		EXIT WHEN NOT EXISTS (SELECT FROM tx_message.delayed WHERE payload = '{"n": 8}');
		PERFORM pg_sleep(0.05);
	END LOOP;
END $$;

-- attributes stored and where the data starts (24: no room taken by a
-- null bitmap; a tuple of 9 attributes with a NULL needs 2 bytes, so 32)
CREATE FUNCTION log_row_shapes() RETURNS TABLE (n text, natts int, t_hoff smallint) LANGUAGE plpgsql AS $$
DECLARE
	t regclass;
BEGIN
	FOR t IN SELECT log_table FROM tx_message.log_slots ORDER BY slot LOOP
		RETURN QUERY EXECUTE format(
			'SELECT l.payload->>''n'', h.t_infomask2 & 2047, h.t_hoff
			   FROM %s l, generate_series(0, pg_relation_size(%L) / 8192 - 1) p,
			        heap_page_items(get_raw_page(%L, p::int)) h
			  WHERE h.t_ctid = l.ctid
			    AND l.topic_id = (SELECT topic_id FROM tx_message.topics WHERE topic = ''rows'')', t, t, t);
	END LOOP;
END $$;
SELECT * FROM log_row_shapes() ORDER BY n;

-- every column reads back as sent
SELECT payload->>'n' AS n, key, tags, headers, state, deliver_at > sent_at AS delayed
  FROM tx_message.messages WHERE topic = 'rows' ORDER BY 1;
SELECT msg_id = :m7 AS half_keeps_its_id FROM tx_message.messages WHERE payload = '{"n": 7}';
SELECT msg_id = :m8 AS delayed_keeps_its_id FROM tx_message.messages WHERE payload = '{"n": 8}';
SELECT payload->>'n' AS n, key, tags, headers FROM tx_receive('rows_g', 10) ORDER BY 1;
SELECT count(*) AS found_by_key FROM tx_find('rows', 'k4', now() - interval '1 hour', 10);
