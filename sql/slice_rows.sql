-- A slice keeps its log positions packed (about a byte a message); slices
-- of the old form (positions, as a dump taken at 1.0 restores them) read
-- the same.
\set VERBOSITY terse
SELECT tx_create_topic('packs');
SELECT tx_subscribe('packs', 'packs_g');
SELECT tx_create_topic('olds');
SELECT tx_subscribe('olds', 'olds_g');

-- three transactions of one message, then one of 300 (more than a block)
SELECT tx_send('packs', '{"n": 1}') IS NOT NULL AS sent;
SELECT tx_send('packs', '{"n": 2}') IS NOT NULL AS sent;
SELECT tx_send('packs', '{"n": 3}') IS NOT NULL AS sent;
SELECT count(*) AS sent
  FROM tx_send_batch('packs', (SELECT array_agg(jsonb_build_object('n', i)) FROM generate_series(4, 303) i));
SELECT count(*) AS sent
  FROM tx_send_batch('olds', (SELECT array_agg(jsonb_build_object('n', i)) FROM generate_series(1, 10) i));

CREATE FUNCTION stream_length(t text) RETURNS bigint LANGUAGE sql AS $$
	SELECT coalesce(sum(cardinality(tx_message._slice_positions(s.positions, s.packed))), 0)
	  FROM tx_message.slices s JOIN tx_message.topics USING (topic_id) WHERE topic = t $$;
DO $$
BEGIN
	FOR i IN 1..200 LOOP
		EXIT WHEN stream_length('packs') = 303 AND stream_length('olds') = 10;
		PERFORM pg_sleep(0.05);
	END LOOP;
END $$;

-- every slice the ticker made is packed, none crosses a block, and the
-- positions are those of the messages, in the order they were committed
SELECT count(*) > 1 AS several_slices,
	   bool_and(s.positions IS NULL AND s.packed IS NOT NULL) AS all_packed,
	   bool_and(s.first_seq / 256 = (s.first_seq + cardinality(tx_message._slice_positions(s.positions, s.packed)) - 1) / 256)
		 AS within_blocks
  FROM tx_message.slices s JOIN tx_message.topics USING (topic_id) WHERE topic = 'packs';
SELECT (SELECT array_agg(p ORDER BY s.first_seq, o)
		  FROM tx_message.slices s JOIN tx_message.topics USING (topic_id),
			   unnest(tx_message._slice_positions(s.positions, s.packed)) WITH ORDINALITY u(p, o)
		 WHERE topic = 'packs')
	 = (SELECT array_agg(msg_id ORDER BY msg_id) FROM tx_message.messages WHERE topic = 'packs')
	   AS positions_in_commit_order;
-- a byte a message, and the first position of each slice in full
SELECT sum(octet_length(s.packed)) <= 303 + 8 * count(*) AS about_a_byte_each
  FROM tx_message.slices s JOIN tx_message.topics USING (topic_id) WHERE topic = 'packs';

-- the old form, as restored from a dump taken at 1.0
UPDATE tx_message.slices s SET positions = tx_message._slice_positions(s.positions, s.packed), packed = NULL
  FROM tx_message.topics t WHERE t.topic_id = s.topic_id AND t.topic = 'olds';
SELECT count(*) AS old_form_slices FROM tx_message.slices s JOIN tx_message.topics USING (topic_id)
 WHERE topic = 'olds' AND packed IS NULL AND positions IS NOT NULL;

-- both forms deliver every message once
SELECT count(*) AS received, count(DISTINCT payload) AS distinct_payloads,
	   min((payload->>'n')::int), max((payload->>'n')::int)
  FROM tx_receive('packs_g', 1000);
SELECT count(*) AS received, min((payload->>'n')::int), max((payload->>'n')::int)
  FROM tx_receive('olds_g', 1000);
-- tx_trace finds a message's position through the tick that made it
-- deliverable
SELECT consumer_group, state FROM tx_trace((SELECT msg_id FROM tx_message.messages
											  WHERE topic = 'packs' AND payload->>'n' = '200'));
SELECT consumer_group, state FROM tx_trace((SELECT msg_id FROM tx_message.messages
											  WHERE topic = 'olds' AND payload->>'n' = '7'));

-- a slice holds its positions in one column, never both or neither
UPDATE tx_message.slices s SET positions = NULL
  FROM tx_message.topics t WHERE t.topic_id = s.topic_id AND t.topic = 'olds';
UPDATE tx_message.slices s SET packed = '\x05'
  FROM tx_message.topics t WHERE t.topic_id = s.topic_id AND t.topic = 'olds';

-- an array with a NULL in it is refused by the reader too
UPDATE tx_message.slices s SET positions = s.positions || NULL::bigint
  FROM tx_message.topics t WHERE t.topic_id = s.topic_id AND t.topic = 'olds';
\set VERBOSITY default
SELECT count(*) FROM tx_receive('olds_g', 10);
\set VERBOSITY terse
UPDATE tx_message.slices s SET positions = s.positions[1:10]
  FROM tx_message.topics t WHERE t.topic_id = s.topic_id AND t.topic = 'olds';

-- and a slice with neither (only without the check constraint)
BEGIN;
ALTER TABLE tx_message.slices DROP CONSTRAINT slices_positions_or_packed;
UPDATE tx_message.slices s SET positions = NULL
  FROM tx_message.topics t WHERE t.topic_id = s.topic_id AND t.topic = 'olds';
\set VERBOSITY sqlstate
SELECT count(*) FROM tx_receive('olds_g', 10);
\set VERBOSITY terse
ROLLBACK;

-- a slice of more positions than a block holds is refused by the reader
SELECT tx_create_topic('overfull');
SELECT tx_subscribe('overfull', 'overfull_g');
SELECT tx_send('overfull', '{"n": 1}') IS NOT NULL AS sent;
DO $$
BEGIN
	FOR i IN 1..200 LOOP
		EXIT WHEN stream_length('overfull') = 1;
		PERFORM pg_sleep(0.05);
	END LOOP;
END $$;
SELECT s.packed AS good_packed FROM tx_message.slices s JOIN tx_message.topics USING (topic_id)
 WHERE topic = 'overfull' \gset
UPDATE tx_message.slices s SET packed = '\x05' || decode(repeat('01', 299), 'hex')
  FROM tx_message.topics t WHERE t.topic_id = s.topic_id AND t.topic = 'overfull';
\set VERBOSITY default
SELECT count(*) FROM tx_receive('overfull_g', 10);
\set VERBOSITY terse
UPDATE tx_message.slices s SET packed = :'good_packed'
  FROM tx_message.topics t WHERE t.topic_id = s.topic_id AND t.topic = 'overfull';
SELECT payload FROM tx_receive('overfull_g', 10);

-- or, once that tick's row is gone (a later tick, overfull's, stays), by
-- looking through the topic's slices
DELETE FROM tx_message.ticks k USING tx_message.slices s, tx_message.topics t
 WHERE k.tick_id = s.tick_id AND s.topic_id = t.topic_id AND t.topic IN ('packs', 'olds')
   AND k.tick_id < (SELECT max(tick_id) FROM tx_message.ticks);
SELECT consumer_group, state, deliverable_at IS NULL AS tick_unknown
  FROM tx_trace((SELECT msg_id FROM tx_message.messages WHERE topic = 'packs' AND payload->>'n' = '200'))
UNION ALL
SELECT consumer_group, state, deliverable_at IS NULL
  FROM tx_trace((SELECT msg_id FROM tx_message.messages WHERE topic = 'olds' AND payload->>'n' = '7'));

-- the decoder: the form, its bounds, and bytes that are not positions
SELECT tx_message._slice_positions('{5,3}', NULL) AS from_array,
	   tx_message._slice_positions(NULL, NULL) AS neither,
	   tx_message._slice_positions(NULL, '\x') AS empty,
	   tx_message._slice_positions(NULL, '\x050401') AS two,
	   tx_message._slice_positions(NULL, '\xfdffffffffff07') AS largest_xid,
	   tx_message._slice_positions(NULL, '\x0500ffff3f') AS largest_n;
DO $$
DECLARE
	bad bytea;
	detail text;
BEGIN
	FOREACH bad IN ARRAY ARRAY['\x80',					-- cut short
							   '\xffffffffffffffffff7f',	-- more than 64 bits
							   '\x81808080808008',		-- an xid of 2^43
							   '\x0500808040',			-- n of 2^20
							   '\x03']::bytea[]			-- an xid below 0
	LOOP
		BEGIN
			PERFORM tx_message._slice_positions(NULL, bad);
			RAISE NOTICE '% decoded', bad;
		EXCEPTION WHEN data_corrupted THEN
			GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
			RAISE NOTICE '%: %', bad, detail;
		END;
	END LOOP;
END $$;
