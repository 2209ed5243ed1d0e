-- Turns the table "results" (scenario, variant, system, rep, metric, value)
-- written by bench/run.sh into the Markdown tables of the report.  Values
-- are medians over the repetitions; a ratio is the median of the ratios
-- computed within each repetition, so drift between repetitions cancels.

-- median of a metric
CREATE FUNCTION pg_temp.med(sc text, va text, sy text, me text) RETURNS float8
LANGUAGE sql STABLE AS $$
	SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY value)
	  FROM results
	 WHERE scenario = sc AND variant = va AND system = sy AND metric = me AND value <> 'NaN'
$$;

-- median over repetitions of (system a / system b)
CREATE FUNCTION pg_temp.ratio(sc text, va text, a text, b text, me text) RETURNS float8
LANGUAGE sql STABLE AS $$
	SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x.value / y.value)
	  FROM results x JOIN results y USING (scenario, rep, metric)
	 WHERE x.scenario = sc AND x.variant = va AND y.variant = va AND x.metric = me
	   AND x.system = a AND y.system = b AND y.value <> 0
	   AND x.value <> 'NaN' AND y.value <> 'NaN'
$$;

-- median over repetitions of (variant a / variant b) for one system
CREATE FUNCTION pg_temp.vratio(sc text, a text, b text, sy text, me text) RETURNS float8
LANGUAGE sql STABLE AS $$
	SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x.value / y.value)
	  FROM results x JOIN results y USING (scenario, rep, metric, system)
	 WHERE x.scenario = sc AND x.variant = a AND y.variant = b AND x.metric = me
	   AND x.system = sy AND y.value <> 0 AND x.value <> 'NaN' AND y.value <> 'NaN'
$$;

-- a number for a table cell
CREATE FUNCTION pg_temp.n(v float8, digits integer DEFAULT 0) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN v IS NULL OR v = 'NaN' THEN '–'
				WHEN digits = 0 THEN to_char(round(v), 'FM999G999G999G990')
				ELSE to_char(round(v::numeric, digits), 'FM999G999G999G990D' || repeat('0', digits)) END
$$;

CREATE FUNCTION pg_temp.x(v float8) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN v IS NULL OR v = 'NaN' THEN '–' ELSE to_char(v, 'FM990D00') || ' ×' END
$$;

CREATE FUNCTION pg_temp.variants(sc text) RETURNS SETOF text
LANGUAGE sql STABLE AS $$
	SELECT variant FROM results WHERE scenario = sc GROUP BY variant ORDER BY min(ord)
$$;

\pset footer off

SELECT '## Produce: business transaction + one message (TPS)' WHERE EXISTS (SELECT FROM results WHERE scenario = 'produce');
SELECT E'\n| clients, synchronous_commit | limit | outbox | PgQ | tx_message | tx_message / limit | tx_message / outbox | tx_message / PgQ | outbox / limit | PgQ / limit |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'produce');
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |', replace(replace(v, '_sync_', ', '), 'c', ''),
			  pg_temp.n(pg_temp.med('produce', v, 'limit', 'tps')),
			  pg_temp.n(pg_temp.med('produce', v, 'outbox', 'tps')),
			  pg_temp.n(pg_temp.med('produce', v, 'pgq', 'tps')),
			  pg_temp.n(pg_temp.med('produce', v, 'txm', 'tps')),
			  pg_temp.x(pg_temp.ratio('produce', v, 'txm', 'limit', 'tps')),
			  pg_temp.x(pg_temp.ratio('produce', v, 'txm', 'outbox', 'tps')),
			  pg_temp.x(pg_temp.ratio('produce', v, 'txm', 'pgq', 'tps')),
			  pg_temp.x(pg_temp.ratio('produce', v, 'outbox', 'limit', 'tps')),
			  pg_temp.x(pg_temp.ratio('produce', v, 'pgq', 'limit', 'tps')))
  FROM pg_temp.variants('produce') v;

SELECT E'\nWAL bytes per transaction, and what the message adds to the business transaction:\n\n| clients, synchronous_commit | limit | outbox | PgQ | tx_message | message: outbox | message: PgQ | message: tx_message | tx_message / outbox |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'produce');
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s |', replace(replace(v, '_sync_', ', '), 'c', ''),
			  pg_temp.n(l), pg_temp.n(o), pg_temp.n(p), pg_temp.n(t),
			  pg_temp.n(o - l), pg_temp.n(p - l), pg_temp.n(t - l), pg_temp.x((t - l) / nullif(o - l, 0)))
  FROM pg_temp.variants('produce') v,
	   LATERAL (SELECT pg_temp.med('produce', v, 'limit', 'wal_per_txn') l,
					   pg_temp.med('produce', v, 'outbox', 'wal_per_txn') o,
					   pg_temp.med('produce', v, 'pgq', 'wal_per_txn') p,
					   pg_temp.med('produce', v, 'txm', 'wal_per_txn') t) m;

SELECT E'\nWhere the WAL of a transaction goes (bytes; pg_waldump''s records by the relation of their first block, full-page images included; pages: page headers and alignment):\n\n| clients, synchronous_commit | system | message row | its index | outbox sequence | slices | ticks | commits | business transaction | other | pages | total |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'produce' AND metric = 'wal_message');
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |',
			  replace(replace(v, '_sync_', ', '), 'c', ''), CASE sy WHEN 'txm' THEN 'tx_message' ELSE sy END,
			  pg_temp.n(pg_temp.med('produce', v, sy, 'wal_message'), 1),
			  pg_temp.n(pg_temp.med('produce', v, sy, 'wal_index'), 1),
			  pg_temp.n(pg_temp.med('produce', v, sy, 'wal_sequence'), 1),
			  pg_temp.n(pg_temp.med('produce', v, sy, 'wal_slices'), 1),
			  pg_temp.n(pg_temp.med('produce', v, sy, 'wal_ticks'), 1),
			  pg_temp.n(pg_temp.med('produce', v, sy, 'wal_commit'), 1),
			  pg_temp.n(pg_temp.med('produce', v, sy, 'wal_business'), 1),
			  pg_temp.n(pg_temp.med('produce', v, sy, 'wal_other'), 1),
			  pg_temp.n(pg_temp.med('produce', v, sy, 'wal_pages'), 1),
			  pg_temp.n(pg_temp.med('produce', v, sy, 'wal_per_txn'), 1))
  FROM pg_temp.variants('produce') WITH ORDINALITY p(v, o), unnest(ARRAY['outbox', 'txm']) sy
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'produce' AND metric = 'wal_message')
 ORDER BY o, sy;

SELECT E'\nThe machine during the runs: cores kept busy (of the machine''s, everything included), tx_message''s own processes (the worker''s ticks) in cores, and transactions per busy core:\n\n| clients, synchronous_commit | cores busy: limit | outbox | tx_message | tx_message''s processes | TPS per busy core: outbox | tx_message | tx_message / outbox |\n|---|--:|--:|--:|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'produce' AND metric = 'cores_busy');
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s |', replace(replace(v, '_sync_', ', '), 'c', ''),
			  pg_temp.n(pg_temp.med('produce', v, 'limit', 'cores_busy'), 2),
			  pg_temp.n(pg_temp.med('produce', v, 'outbox', 'cores_busy'), 2),
			  pg_temp.n(pg_temp.med('produce', v, 'txm', 'cores_busy'), 2),
			  pg_temp.n(pg_temp.med('produce', v, 'txm', 'relay_cores'), 2),
			  pg_temp.n(o), pg_temp.n(t), pg_temp.x(t / nullif(o, 0)))
  FROM pg_temp.variants('produce') v,
	   LATERAL (SELECT pg_temp.med('produce', v, 'outbox', 'tps') / nullif(pg_temp.med('produce', v, 'outbox', 'cores_busy'), 0) o,
					   pg_temp.med('produce', v, 'txm', 'tps') / nullif(pg_temp.med('produce', v, 'txm', 'cores_busy'), 0) t) m
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'produce' AND metric = 'cores_busy');

SELECT E'\n## Produce in batches: business transaction + 100 messages (messages/s)\n\n| clients | outbox (multi-row INSERT) | PgQ | tx_message (tx_send_batch) | tx_message / outbox | tx_message / PgQ | WAL B/msg outbox | PgQ | tx_message |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'batch');
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s |', replace(replace(v, '_batch_100', ''), 'c', ''),
			  pg_temp.n(pg_temp.med('batch', v, 'outbox', 'msgs_per_s')),
			  pg_temp.n(pg_temp.med('batch', v, 'pgq', 'msgs_per_s')),
			  pg_temp.n(pg_temp.med('batch', v, 'txm', 'msgs_per_s')),
			  pg_temp.x(pg_temp.ratio('batch', v, 'txm', 'outbox', 'msgs_per_s')),
			  pg_temp.x(pg_temp.ratio('batch', v, 'txm', 'pgq', 'msgs_per_s')),
			  pg_temp.n(pg_temp.med('batch', v, 'outbox', 'wal_per_msg')),
			  pg_temp.n(pg_temp.med('batch', v, 'pgq', 'wal_per_msg')),
			  pg_temp.n(pg_temp.med('batch', v, 'txm', 'wal_per_msg')))
  FROM pg_temp.variants('batch') v;

SELECT E'\n## Consume: drain a backlog in batches of 100 (messages/s)\n\nc1: one consumer; c2, c4: two and four competing consumers of one group; fanout4: four groups, one consumer each (deliveries/s); held_c1: c1 while another session holds a snapshot; fresh_c1: c1 again right before each held_c1 run, the baseline of its ratio.\n\n| variant | outbox | PgQ | tx_message | tx_message / outbox | tx_message / PgQ | WAL B/msg outbox | PgQ | tx_message |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'consume');
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s |', v,
			  pg_temp.n(pg_temp.med('consume', v, 'outbox', 'msgs_per_s')),
			  pg_temp.n(pg_temp.med('consume', v, 'pgq', 'msgs_per_s')),
			  pg_temp.n(pg_temp.med('consume', v, 'txm', 'msgs_per_s')),
			  pg_temp.x(pg_temp.ratio('consume', v, 'txm', 'outbox', 'msgs_per_s')),
			  pg_temp.x(pg_temp.ratio('consume', v, 'txm', 'pgq', 'msgs_per_s')),
			  pg_temp.n(pg_temp.med('consume', v, 'outbox', 'wal_per_msg'), 1),
			  pg_temp.n(pg_temp.med('consume', v, 'pgq', 'wal_per_msg'), 1),
			  pg_temp.n(pg_temp.med('consume', v, 'txm', 'wal_per_msg'), 1))
  FROM pg_temp.variants('consume') v;

SELECT E'\n| | outbox | PgQ | tx_message |\n|---|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'consume');
SELECT format('| %s | %s | %s | %s |', label,
			  pg_temp.x(pg_temp.vratio('consume', a, b, 'outbox', 'msgs_per_s')),
			  pg_temp.x(pg_temp.vratio('consume', a, b, 'pgq', 'msgs_per_s')),
			  pg_temp.x(pg_temp.vratio('consume', a, b, 'txm', 'msgs_per_s')))
  FROM (VALUES (1, 'two consumers / one (c2 / c1)', 'c2', 'c1'),
			   (2, 'four consumers / two (c4 / c2)', 'c4', 'c2'),
			   (3, 'held snapshot / fresh (held_c1 / fresh_c1)', 'held_c1', 'fresh_c1')) AS t(o, label, a, b)
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'consume' AND variant = a)
 ORDER BY o;
SELECT format('| tx_message held / outbox held | | | %s |', pg_temp.x(pg_temp.ratio('consume', 'held_c1', 'txm', 'outbox', 'msgs_per_s')))
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'consume' AND variant = 'held_c1');
SELECT format('| dead tuples after the held run | %s | %s | %s |',
			  pg_temp.n(pg_temp.med('consume', 'held_c1', 'outbox', 'dead_tuples')),
			  pg_temp.n(pg_temp.med('consume', 'held_c1', 'pgq', 'dead_tuples')),
			  pg_temp.n(pg_temp.med('consume', 'held_c1', 'txm', 'dead_tuples')))
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'consume' AND variant = 'held_c1');
SELECT format('| messages left over (most of any run) | %s | %s | %s |',
			  pg_temp.n(max(value) FILTER (WHERE system = 'outbox')),
			  pg_temp.n(max(value) FILTER (WHERE system = 'pgq')),
			  pg_temp.n(max(value) FILTER (WHERE system = 'txm')))
  FROM results WHERE scenario = 'consume' AND metric = 'left_over'
HAVING count(*) > 0;

SELECT E'\n## Latency: commit -> consumer blocked in tx_receive(..., wait => ...)\n\ncommit -> consumer: from the return of the producer''s COMMIT (pgbench''s transaction log) to the return of tx_receive; send -> consumer: from the clock_timestamp() of the tx_send call, so the producer''s commit (its WAL flush) is included.\n\n| rate (msg/s) | achieved | commit -> consumer p50 ms | p99 ms | max ms | send -> consumer p50 ms | p99 ms | max ms |\n|--:|--:|--:|--:|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'latency');
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s |', replace(v, 'rate_', ''),
			  pg_temp.n(pg_temp.med('latency', v, 'txm', 'achieved_per_s')),
			  pg_temp.n(pg_temp.med('latency', v, 'txm', 'p50_ms'), 2),
			  pg_temp.n(pg_temp.med('latency', v, 'txm', 'p99_ms'), 2),
			  pg_temp.n(pg_temp.med('latency', v, 'txm', 'max_ms'), 2),
			  pg_temp.n(pg_temp.med('latency', v, 'txm', 'send_p50_ms'), 2),
			  pg_temp.n(pg_temp.med('latency', v, 'txm', 'send_p99_ms'), 2),
			  pg_temp.n(pg_temp.med('latency', v, 'txm', 'send_max_ms'), 2))
  FROM pg_temp.variants('latency') v WHERE v LIKE 'rate_%';
SELECT E'\n8 producers flat out into one topic, while nobody waits, a consumer waits for another topic, or one waits for this topic with a tag filter that matches none of its messages:\n\n| | nobody waits | one waits for another topic | ratio | one waits in vain | ratio |\n|---|--:|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'latency' AND variant = 'elsewhere_1');
SELECT format('| %s | %s | %s | %s | %s | %s |', l, pg_temp.n(a), pg_temp.n(b), pg_temp.x(pg_temp.vratio('latency', 'elsewhere_1', 'elsewhere_0', 'txm', m)),
			  pg_temp.n(c), pg_temp.x(pg_temp.vratio('latency', 'elsewhere_2', 'elsewhere_0', 'txm', m)))
  FROM (SELECT o, l, m, pg_temp.med('latency', 'elsewhere_0', 'txm', m) a, pg_temp.med('latency', 'elsewhere_1', 'txm', m) b,
               pg_temp.med('latency', 'elsewhere_2', 'txm', m) c
          FROM (VALUES (1, 'produce (TPS)', 'tps'), (2, 'ticks per second', 'ticks_per_s'),
                       (3, 'WAL per produce transaction (bytes)', 'wal_per_txn')) x(o, l, m)) t
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'latency' AND variant = 'elsewhere_1')
 ORDER BY o;

SELECT E'\n## Backlog: one receive of 100 + ack, with n messages waiting (ms per transaction)\n\n| waiting | outbox p50 | outbox p99 | tx_message p50 | tx_message p99 | tx_message p50 / at 1 000 | bytes per waiting message: outbox | tx_message | tx_message / outbox |\n|--:|--:|--:|--:|--:|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'backlog');
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s |', pg_temp.n(replace(v, 'n_', '')::float8),
			  pg_temp.n(pg_temp.med('backlog', v, 'outbox', 'p50_ms'), 3),
			  pg_temp.n(pg_temp.med('backlog', v, 'outbox', 'p99_ms'), 3),
			  pg_temp.n(pg_temp.med('backlog', v, 'txm', 'p50_ms'), 3),
			  pg_temp.n(pg_temp.med('backlog', v, 'txm', 'p99_ms'), 3),
			  pg_temp.x(pg_temp.med('backlog', v, 'txm', 'p50_ms') /
						nullif(pg_temp.med('backlog', 'n_1000', 'txm', 'p50_ms'), 0)),
			  pg_temp.n(pg_temp.med('backlog', v, 'outbox', 'bytes_per_msg')),
			  pg_temp.n(pg_temp.med('backlog', v, 'txm', 'bytes_per_msg')),
			  pg_temp.x(pg_temp.ratio('backlog', v, 'txm', 'outbox', 'bytes_per_msg')))
  FROM pg_temp.variants('backlog') v;

SELECT E'\n## Steady state: produce + consume at 80 % of the sustainable rate\n\nSampled every few seconds; "early" is 20-30 % into the run (minute 2-3 of 10), "late" the last 10 %. Sizes and dead tuples are the peaks in each window (retention makes them a sawtooth), WAL the mean.\n\n| system | rate (msg/s) | size MB early | late | late / early | dead tuples early | late | WAL B/msg early | late |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'steady');
WITH samples AS (
	SELECT system, metric, value, replace(variant, 't_', '')::float8 AS t,
		   max(replace(variant, 't_', '')::float8) OVER (PARTITION BY system) AS t_end
	  FROM results WHERE scenario = 'steady' AND variant LIKE 't\_%'),
windows AS (
	SELECT system, metric,
		   CASE WHEN t > 0.2 * t_end AND t <= 0.3 * t_end THEN 'early'
				WHEN t > 0.9 * t_end THEN 'late' END AS w,
		   max(value) AS peak, avg(value) AS mean
	  FROM samples GROUP BY 1, 2, 3)
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s |',
			  CASE s.system WHEN 'txm' THEN 'tx_message' ELSE s.system END,
			  pg_temp.n(pg_temp.med('steady', 'rate', s.system, 'msgs_per_s')),
			  pg_temp.n(se.peak / 1048576, 1), pg_temp.n(sl.peak / 1048576, 1),
			  pg_temp.x(sl.peak / nullif(se.peak, 0)),
			  pg_temp.n(de.peak), pg_temp.n(dl.peak),
			  pg_temp.n(we.mean), pg_temp.n(wl.mean))
  FROM (SELECT DISTINCT system FROM samples) s
  LEFT JOIN windows se ON se.system = s.system AND se.metric = 'size_bytes' AND se.w = 'early'
  LEFT JOIN windows sl ON sl.system = s.system AND sl.metric = 'size_bytes' AND sl.w = 'late'
  LEFT JOIN windows de ON de.system = s.system AND de.metric = 'dead_tuples' AND de.w = 'early'
  LEFT JOIN windows dl ON dl.system = s.system AND dl.metric = 'dead_tuples' AND dl.w = 'late'
  LEFT JOIN windows we ON we.system = s.system AND we.metric = 'wal_per_msg' AND we.w = 'early'
  LEFT JOIN windows wl ON wl.system = s.system AND wl.metric = 'wal_per_msg' AND wl.w = 'late'
 ORDER BY s.system DESC;

SELECT E'\n## A snapshot held under load\n\n300 messages/s and a consumer, a repeatable-read snapshot held in the middle phase. Live rows: the mean before the hold, the peak during it, and the mean from one minute after its end on; file sizes (with indexes, kB): before, at the end of the hold, at the end of the run.\n\n| table | rows before | rows peak in hold | rows 1 min after | kB before | kB end of hold | kB end | growth in hold kB/s |\n|---|--:|--:|--:|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'hold');
WITH ph AS (
	SELECT max(value) FILTER (WHERE metric = 'before_s') AS b,
		   max(value) FILTER (WHERE metric = 'before_s') + max(value) FILTER (WHERE metric = 'during_s') AS e
	  FROM results WHERE scenario = 'hold' AND variant = 'phases'),
samples AS (
	SELECT split_part(metric, '_', 1) || CASE WHEN metric LIKE 'retries%' THEN '_data' ELSE '' END AS rel,
		   CASE WHEN metric LIKE '%_rows' THEN 'rows' ELSE 'bytes' END AS what,
		   replace(variant, 't_', '')::float8 AS t, value
	  FROM results WHERE scenario = 'hold' AND variant LIKE 't\_%')
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s |', r.rel,
		pg_temp.n((SELECT avg(value) FROM samples s WHERE s.rel = r.rel AND what = 'rows' AND t < ph.b)),
		pg_temp.n((SELECT max(value) FROM samples s WHERE s.rel = r.rel AND what = 'rows' AND t >= ph.b AND t < ph.e)),
		pg_temp.n((SELECT avg(value) FROM samples s WHERE s.rel = r.rel AND what = 'rows' AND t >= ph.e + 60)),
		pg_temp.n((SELECT max(value) / 1024 FROM samples s WHERE s.rel = r.rel AND what = 'bytes' AND t < ph.b)),
		pg_temp.n((SELECT max(value) / 1024 FROM samples s WHERE s.rel = r.rel AND what = 'bytes' AND t < ph.e)),
		pg_temp.n((SELECT value / 1024 FROM samples s WHERE s.rel = r.rel AND what = 'bytes' ORDER BY t DESC LIMIT 1)),
		pg_temp.n(((SELECT max(value) FROM samples s WHERE s.rel = r.rel AND what = 'bytes' AND t < ph.e)
				  - (SELECT max(value) FROM samples s WHERE s.rel = r.rel AND what = 'bytes' AND t < ph.b))
				 / 1024 / nullif(ph.e - ph.b, 0), 1))
  FROM (SELECT DISTINCT rel FROM samples) r, ph
 ORDER BY r.rel;

SELECT E'\n## Soak: 8 producers, 4 consumers and a handler\n\nThe load of t/007_faults.pl for the whole run, then the backlog drains; effects counted against the committed business rows (pull and the handler must be exactly once, ext at least once). ' ||
	   pg_temp.n(pg_temp.med('soak', 'all', 'txm', 'produced')) || ' business rows committed, drained in ' ||
	   pg_temp.n(pg_temp.med('soak', 'all', 'txm', 'drain_s')) || E' s.\n\n| consumer | effects | lost | phantom | duplicate | dead letters |\n|---|--:|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'soak');
SELECT format('| %s | %s | %s | %s | %s | %s |', k,
			  pg_temp.n(pg_temp.med('soak', k, 'txm', 'effects')), pg_temp.n(pg_temp.med('soak', k, 'txm', 'lost')),
			  pg_temp.n(pg_temp.med('soak', k, 'txm', 'phantom')), pg_temp.n(pg_temp.med('soak', k, 'txm', 'dup')),
			  pg_temp.n(pg_temp.med('soak', k, 'txm', 'dead')))
  FROM unnest(ARRAY['pull', 'handler', 'ext']) k
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'soak');

SELECT E'\n## tx_stats() with 100 groups\n\n| messages waiting | ms per SELECT * FROM tx_stats() |\n|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'stats');
SELECT format('| %s | %s |', pg_temp.n(replace(v, 'n_', '')::float8), pg_temp.n(pg_temp.med('stats', v, 'txm', 'ms'), 2))
  FROM pg_temp.variants('stats') v;

SELECT E'\n## tx_find, a key that is not there (a scan of everything retained)\n\n| messages retained | ms per tx_find |\n|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'find');
SELECT format('| %s | %s |', pg_temp.n(replace(v, 'n_', '')::float8), pg_temp.n(pg_temp.med('find', v, 'txm', 'ms'), 1))
  FROM pg_temp.variants('find') v;

SELECT E'\n## Features of 1.1 on the hot paths\n\n| | tx_message | ratio |\n|---|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'parity');
SELECT format('| produce, 8 clients: outbox / tx_send / tx_send with a dedup key (TPS) | %s / %s / %s | dedup %s × tx_send, %s × the outbox |',
			  pg_temp.n(pg_temp.med('parity', 'produce_c8', 'outbox', 'tps')),
			  pg_temp.n(pg_temp.med('parity', 'produce_c8', 'txm', 'tps')),
			  pg_temp.n(pg_temp.med('parity', 'produce_c8', 'txm_dedup', 'tps')),
			  pg_temp.n(pg_temp.med('parity', 'produce_c8', 'txm_dedup', 'tps')
						/ pg_temp.med('parity', 'produce_c8', 'txm', 'tps'), 2),
			  pg_temp.n(pg_temp.med('parity', 'produce_c8', 'txm_dedup', 'tps')
						/ pg_temp.med('parity', 'produce_c8', 'outbox', 'tps'), 2))
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'parity' AND variant = 'produce_c8');
SELECT format('| drain a backlog, one consumer, without / with a header filter half the messages match (backlog messages/s) | %s / %s | %s × |',
			  pg_temp.n(pg_temp.med('parity', 'drain_plain', 'txm', 'msgs_per_s')),
			  pg_temp.n(pg_temp.med('parity', 'drain_filtered', 'txm', 'msgs_per_s')),
			  pg_temp.n(pg_temp.med('parity', 'drain_filtered', 'txm', 'msgs_per_s')
						/ pg_temp.med('parity', 'drain_plain', 'txm', 'msgs_per_s'), 2))
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'parity' AND variant = 'drain_plain');

SELECT E'\n## Console page loads (100 groups)\n\n| page | median ms | worst of 5 ms |\n|---|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'console');
SELECT format('| `%s` | %s | %s |', v, pg_temp.n(pg_temp.med('console', v, 'txm', 'ms'), 1),
			  pg_temp.n(pg_temp.med('console', v, 'txm', 'worst_ms'), 1))
  FROM pg_temp.variants('console') v;

-- median over repetitions of (loop a / loop b), whatever their systems
CREATE FUNCTION pg_temp.lratio(a text, b text) RETURNS float8
LANGUAGE sql STABLE AS $$
	SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x.value / y.value)
	  FROM results x JOIN results y USING (scenario, rep, metric)
	 WHERE x.scenario = 'loops' AND x.variant = a AND y.variant = b AND x.metric = 'msgs_per_s'
	   AND y.value <> 0 AND x.value <> 'NaN' AND y.value <> 'NaN'
$$;

-- the loops of scenario "loops": name, system, round trips per batch, place
CREATE TEMP VIEW loop_list(l, s, rt, o) AS
	VALUES ('outbox_tx', 'outbox', 3, 1), ('outbox_auto', 'outbox', 1, 2), ('txm_tx', 'txm', 4, 3),
		   ('txm_tx2', 'txm', 2, 4), ('txm_tx_ids', 'txm', 4, 5), ('txm_ids_every_row', 'txm', 4, 6),
		   ('txm_auto', 'txm', 2, 7), ('txm_cte', 'txm', 1, 8),
		   ('outbox_tx_async', 'outbox', 3, 9), ('txm_tx_async', 'txm', 4, 10),
		   ('txm_tx_ordered', 'txm', 4, 11);

SELECT E'\n## Consumer loops (messages/s, 100 per batch)\n\n_async: with `synchronous_commit = off`, compared with the outbox''s loop with it off too.\n\n| loop | round trips | 1 consumer | 2 consumers | c2 / c1 | / CTE, c1 | / CTE, c2 | / outbox loop, c1 | / outbox loop, c2 |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'loops');
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s |', l, rt,
			  pg_temp.n(pg_temp.med('loops', l || '_c1', s, 'msgs_per_s')),
			  pg_temp.n(pg_temp.med('loops', l || '_c2', s, 'msgs_per_s')),
			  pg_temp.x(pg_temp.lratio(l || '_c2', l || '_c1')),
			  pg_temp.x(pg_temp.lratio(l || '_c1', 'txm_cte_c1')),
			  pg_temp.x(pg_temp.lratio(l || '_c2', 'txm_cte_c2')),
			  pg_temp.x(pg_temp.lratio(l || '_c1', ob || '_c1')),
			  pg_temp.x(pg_temp.lratio(l || '_c2', ob || '_c2')))
  FROM pg_temp.loop_list v,
	   LATERAL (SELECT CASE WHEN l LIKE '%\_async' THEN 'outbox_tx_async' ELSE 'outbox_tx' END) AS b(ob)
 -- the loops that ran (BENCH_LOOPS may name fewer)
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'loops' AND variant IN (l || '_c1', l || '_c2'))
 ORDER BY o;
SELECT E'\nThe machine during the loops: cores kept busy (pgbench, the backends and the rest, of the machine''s) and its CPU per message:\n\n| loop | cores busy, 1 consumer | 2 consumers | CPU µs per message, 1 consumer | 2 consumers |\n|---|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'loops' AND metric = 'cores_busy');
SELECT format('| %s | %s | %s | %s | %s |', l,
			  pg_temp.n(pg_temp.med('loops', l || '_c1', s, 'cores_busy'), 2),
			  pg_temp.n(pg_temp.med('loops', l || '_c2', s, 'cores_busy'), 2),
			  pg_temp.n(1e6 * pg_temp.med('loops', l || '_c1', s, 'cores_busy') / nullif(pg_temp.med('loops', l || '_c1', s, 'msgs_per_s'), 0), 1),
			  pg_temp.n(1e6 * pg_temp.med('loops', l || '_c2', s, 'cores_busy') / nullif(pg_temp.med('loops', l || '_c2', s, 'msgs_per_s'), 0), 1))
  FROM pg_temp.loop_list v
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'loops' AND metric = 'cores_busy'
				 AND variant IN (l || '_c1', l || '_c2'))
 ORDER BY o;
SELECT E'\nA round trip that does nothing (`SELECT 1`, one client): ' || pg_temp.n(pg_temp.med('loops', 'roundtrip', 'none', 'ms'), 3) || ' ms.'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'loops');

-- scenarios "topics" and "groups": one figure per setting, for n = few and many
CREATE FUNCTION pg_temp.scale_rows(sc text, few text, many text) RETURNS SETOF text
LANGUAGE sql STABLE AS $$
	SELECT format('| %s | %s | %s | %s |', label,
				  pg_temp.n(pg_temp.med(sc, va || '_' || few, 'txm', me), digits),
				  pg_temp.n(pg_temp.med(sc, va || '_' || many, 'txm', me), digits),
				  pg_temp.x(pg_temp.vratio(sc, va || '_' || many, va || '_' || few, 'txm', me)))
	  FROM (VALUES (1, 'produce', 'tps', 'produce, 8 clients (TPS)', 0),
				   (2, 'produce', 'wal_per_txn', 'WAL per produce transaction (bytes)', 0),
				   (2.1, 'produce_warm', 'tps', 'produce, 8 clients, as long again (TPS)', 0),
				   (2.2, 'produce_warm', 'wal_per_txn', 'WAL per produce transaction, as long again (bytes)', 0),
				   (3, 'drain', 'msgs_per_s', 'one group drains its topic (messages/s)', 0),
				   (4, 'drain', 'deliveries_per_s', '4 consumers drain every group (deliveries/s)', 0),
				   (5, 'idle', 'cpu_ms_per_s', 'idle launcher and worker (CPU ms/s)', 2),
				   (6, 'idle', 'worker_rss_kb', 'idle worker, private memory (kB)', 0)) v(o, va, me, label, digits)
	 WHERE EXISTS (SELECT FROM results WHERE scenario = sc AND variant = va || '_' || few AND metric = me)
	 ORDER BY o
$$;

SELECT E'\n## Many topics\n\n| | 1 topic | ' || (SELECT max(substring(variant FROM 'idle_(\d+)')::int) FROM results WHERE scenario = 'topics')
	   || E' topics | many / one |\n|---|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'topics');
SELECT pg_temp.scale_rows('topics', '1', (SELECT max(substring(variant FROM 'idle_(\d+)')::int)::text FROM results WHERE scenario = 'topics'))
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'topics');

SELECT E'\n## Many groups on one topic\n\n| | 4 groups | ' || (SELECT max(substring(variant FROM 'idle_(\d+)')::int) FROM results WHERE scenario = 'groups')
	   || E' groups | many / 4 |\n|---|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'groups');
SELECT pg_temp.scale_rows('groups', '4', (SELECT max(substring(variant FROM 'idle_(\d+)')::int)::text FROM results WHERE scenario = 'groups'))
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'groups');

SELECT E'\n## Many databases\n\n| databases | served within 10 s | all served after (s) | handler after send, no worker (ms, p50) | idle cluster CPU (ms/s; without autovacuum; the same databases without the extension) | commit → waiting consumer, no worker (ms: p50 / p99 / max) |\n|--:|--:|--:|--:|--:|--:|'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'databases');
SELECT format('| %s | %s | %s | %s | %s; %s; %s | %s / %s / %s |', replace(v, 'n_', ''), pg_temp.n(pg_temp.med('databases', v, 'txm', 'served')),
			  pg_temp.n(pg_temp.med('databases', v, 'txm', 'served_all_s'), 1),
			  pg_temp.n(pg_temp.med('databases', v, 'txm', 'handler_p50_ms'), 1),
			  pg_temp.n(pg_temp.med('databases', v, 'txm', 'idle_cpu_ms_per_s'), 2),
			  pg_temp.n(pg_temp.med('databases', v, 'txm', 'idle_cpu_noav_ms_per_s'), 2),
			  pg_temp.n(pg_temp.med('databases', v, 'txm', 'idle_cpu_plain_ms_per_s'), 2),
			  pg_temp.n(pg_temp.med('databases', v, 'txm', 'wait_p50_ms'), 2),
			  pg_temp.n(pg_temp.med('databases', v, 'txm', 'wait_p99_ms'), 2),
			  pg_temp.n(pg_temp.med('databases', v, 'txm', 'wait_max_ms'), 2))
  FROM pg_temp.variants('databases') v;

SELECT E'\n## In-database handlers\n\n| handler | messages/s | cores the machine kept busy | messages per CPU-second of the executors |\n|---|--:|--:|--:|' WHERE EXISTS (SELECT FROM results WHERE scenario = 'handler');
SELECT format('| %s | %s | %s | %s |', label,
			  pg_temp.n(pg_temp.med('handler', variant, 'txm', 'msgs_per_s')),
			  pg_temp.n(pg_temp.med('handler', variant, 'txm', 'cores_busy'), 2),
			  pg_temp.n(pg_temp.med('handler', variant, 'txm', 'msgs_per_executor_cpu_s')))
  FROM (VALUES
	(1, 'noop', 'trivial PL/pgSQL function, one group'),
	(2, 'wide_1', 'the same group with `handler_executors => 2` (two executors run it)'),
	(3, 'executors_1', 'two groups, 1 executor running handlers'),
	(4, 'executors_2', 'two groups, 2 executors running handlers'),
	(5, 'wide_2', 'two groups, 2 executors, each group with `handler_executors => 2`'),
	(6, 'executors_1_batch_1000', 'two groups, 1 executor, in batches of 1 000 (`tx_message.handler_batch_size`)'),
	(7, 'wide_2_batch_1000', 'two groups, 2 executors, `handler_executors => 2`, in batches of 1 000'),
	(8, 'executors_1_sync_off', 'two groups, 1 executor, synchronous_commit off (what the WAL flush of each batch costs)'),
	(9, 'executors_2_sync_off', 'two groups, 2 executors, synchronous_commit off'),
	(10, 'wide_2_sync_off', 'two groups, 2 executors, `handler_executors => 2`, synchronous_commit off')
  ) v(ord, variant, label)
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'handler' AND results.variant = v.variant)
 ORDER BY ord;

SELECT E'\n## Idle\n\nCPU used by the idle launcher and worker: ' || pg_temp.n(pg_temp.med('idle', 'workers', 'txm', 'cpu_ms_per_s'), 2) || ' ms per second.'
 WHERE EXISTS (SELECT FROM results WHERE scenario = 'idle');
