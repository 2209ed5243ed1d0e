-- The in-server fuzzer of t/005_fuzz.pl.
--
-- Every object here lives in pg_temp, so that a role with no privilege but
-- TEMP (which PUBLIC has) can load it.  A session loads this file, gets its
-- pools of values from the test (pg_temp.fuzz_pools, written by a superuser
-- snapshot: an unprivileged role cannot see the extension's rows), and runs
--   CALL pg_temp.fuzz_batch(seed, max_calls, milliseconds, log_calls, tag);
-- which calls random functions of the extension's API with random and
-- hostile arguments, each in a subtransaction, and counts the outcomes in
-- pg_temp.fuzz_stats (function, SQLSTATE, whether a writing call reported
-- an effect).  Calls that fail with class XX or 58 are kept in
-- pg_temp.fuzz_bad, successful writing calls with an effect in
-- pg_temp.fuzz_effects, each with the exact statement that made them.
--
-- Generated statements hold only literals (no random() or session state),
-- so a statement from the log or a report replays as is.

SET client_min_messages = warning;

-- The API: every function of the extension whose name does not start with
-- an underscore, with its input arguments, read from the catalogs so that
-- new functions are fuzzed without changing this file.
CREATE TEMP TABLE fuzz_api AS
SELECT row_number() OVER (ORDER BY p.oid) AS ord,
	   p.oid::regprocedure::text AS label,
	   quote_ident(n.nspname) || '.' || quote_ident(p.proname) AS qname,
	   p.prokind,
	   coalesce(string_to_array(nullif(p.proargtypes::text, ''), ' ')::oid[], '{}') AS argtypes,
	   CASE WHEN p.proargnames IS NOT NULL THEN
	   (SELECT array_agg(coalesce(a.nm, '') ORDER BY a.i)
		  FROM unnest(p.proargnames,
					  coalesce(p.proargmodes::text[],
							   array_fill('i'::text, ARRAY[cardinality(p.proargnames)])))
			   WITH ORDINALITY AS a(nm, md, i)
		 WHERE a.md IN ('i', 'b', 'v')) END AS argnames,
	   p.pronargdefaults AS ndefaults,
	   p.proretset AS retset,
	   p.prorettype AS rettype,
	   p.provariadic <> 0 AS variadic,
	   coalesce('msg_id' = ANY (
		   SELECT a.nm FROM unnest(p.proargnames, p.proargmodes::text[]) AS a(nm, md)
			WHERE a.md IN ('o', 'b', 't')), false) AS returns_ids,
	   -- functions that write nothing: their success is never an effect (a
	   -- new VOLATILE function that writes nothing belongs in this list)
	   (p.provolatile <> 'v' OR p.proname IN ('tx_worker_status')) AS readonly
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
				  AND d.refclassid = 'pg_extension'::regclass
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'tx_message'
 WHERE p.proname !~ '^_'
   AND p.prokind IN ('f', 'p')
   AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype, 'internal'::regtype);

CREATE TEMP TABLE fuzz_pools (kind text PRIMARY KEY, vals text[] NOT NULL);
CREATE TEMP TABLE fuzz_stats (fn text, state text, effect boolean, n bigint NOT NULL,
							  PRIMARY KEY (fn, state, effect));
CREATE TEMP TABLE fuzz_bad (fn text, state text, msg text, call text);
CREATE TEMP TABLE fuzz_effects (fn text, result text, call text);

CREATE FUNCTION pg_temp.fuzz_pick(a text[]) RETURNS text
LANGUAGE sql VOLATILE AS $$ SELECT coalesce(a[1 + floor(random() * cardinality(a))::int], 'NULL') $$;

CREATE FUNCTION pg_temp.fuzz_pool(k text) RETURNS text[]
LANGUAGE sql STABLE AS $$ SELECT coalesce((SELECT vals FROM pg_temp.fuzz_pools WHERE kind = k), '{}') $$;

-- An integer in [lo, hi].
CREATE FUNCTION pg_temp.fuzz_int(lo bigint, hi bigint) RETURNS bigint
LANGUAGE sql VOLATILE AS $$ SELECT lo + floor(random() * (hi - lo + 1))::bigint $$;

-- A message id: mostly a real one (from the pools or from this batch's own
-- sends and receives), else an edge case.
CREATE FUNCTION pg_temp.fuzz_id(recent bigint[], half boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql VOLATILE AS $fz$
DECLARE
	ids text[] := pg_temp.fuzz_pool('id') || coalesce(recent::text[], '{}');
	r float8 := random();
BEGIN
	IF half AND r < 0.8 AND cardinality(pg_temp.fuzz_pool('half')) > 0 THEN
		RETURN pg_temp.fuzz_pick(pg_temp.fuzz_pool('half'));
	ELSIF r < 0.75 AND cardinality(ids) > 0 THEN
		RETURN pg_temp.fuzz_pick(ids);
	ELSIF r < 0.85 AND cardinality(ids) > 0 THEN
		RETURN (pg_temp.fuzz_pick(ids)::bigint + pg_temp.fuzz_int(-2, 2))::text;
	END IF;
	RETURN pg_temp.fuzz_pick(ARRAY['0', '-1', '1', '1048576', '1048575', '8796093022208',
		'9223372036854775807', '(-9223372036854775807 - 1)', '4294967296',
		pg_temp.fuzz_int(0, 1000000000000)::text]);
END $fz$;

-- A jsonb expression; lim is the largest payload accepted (0: no limit).
CREATE FUNCTION pg_temp.fuzz_json(nm text, lim bigint) RETURNS text
LANGUAGE plpgsql VOLATILE AS $fz$
DECLARE
	r float8 := random();
	big bigint := CASE WHEN lim > 0 THEN lim ELSE 4096 END;
BEGIN
	IF r < 0.04 THEN
		-- around the limit: the same few hundred bytes either side of it
		RETURN format($$jsonb_build_object('p', repeat('x', %s))$$,
					  greatest(big - 256 + pg_temp.fuzz_int(0, 512), 0));
	ELSIF r < 0.06 THEN
		RETURN format($$(repeat('[', %1$s) || repeat(']', %1$s))$$,
					  pg_temp.fuzz_pick(ARRAY['100', '1000', '5000']));
	ELSIF r < 0.08 THEN
		RETURN $$(SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, 2000) g)$$;
	END IF;
	IF nm = 'headers' AND random() < 0.6 THEN
		RETURN pg_temp.fuzz_pick(ARRAY[$$'{}'$$, $$'{"h": "v"}'$$, $$'{"a": {"b": [1, 2]}}'$$,
			$$'{"": null}'$$, $$'{"ü": "😀"}'$$, $$'{"k": "''; DROP TABLE x; --"}'$$]);
	END IF;
	RETURN pg_temp.fuzz_pick(ARRAY[$$'1'$$, $$'"s"'$$, $$'null'$$, $$'true'$$, $$'{}'$$, $$'[]'$$,
		$$'{"a": 1}'$$, $$'{"order": 42, "amount": 30}'$$, $$'[1, "two", null, {"x": []}]'$$,
		$$'{"a": {"b": {"c": {"d": [1, 2, 3]}}}}'$$, $$'"ünïcødé 😀"'$$, $$'1e308'$$,
		$$'-0.0000000000000000000001'$$, $$'{"s": "it''s"}'$$, $$'{"u": "\u0000"}'$$,
		$$'"'$$, $$''$$, format($$jsonb_build_object('i', %s)$$, pg_temp.fuzz_int(0, 100000)),
		$$jsonb_build_object('k', repeat('x', 3000))$$]);
END $fz$;

-- A text array expression (tags, keys).
CREATE FUNCTION pg_temp.fuzz_text_array() RETURNS text
LANGUAGE plpgsql VOLATILE AS $fz$
BEGIN
	RETURN pg_temp.fuzz_pick(ARRAY[$$'{}'$$, $$'{NULL}'$$, $$'{a}'$$, $$'{a,b}'$$, $$'{a,NULL,b}'$$,
		$$'{{a,b},{c,d}}'$$, $$'[0:1]={a,b}'$$, $$'{""}'$$, $$ARRAY['it''s', '😀', '']$$,
		$$ARRAY[repeat('t', 10000)]$$, $$ARRAY['k0', 'k1', 'k2']$$, $$ARRAY['k1', NULL, 'k1']$$,
		$$(SELECT array_agg('k' || g) FROM generate_series(1, 3) g)$$,
		$$(SELECT array_agg(g::text) FROM generate_series(1, 20000) g)$$]);
END $fz$;

-- A plausible value for the argument named nm of type tn, or NULL when
-- there is none: what a sane call (see fuzz_build) passes, so that it gets
-- past the checks of its arguments into the engine.
CREATE FUNCTION pg_temp.fuzz_sane(tn text, nm text, recent bigint[], fn text) RETURNS text
LANGUAGE plpgsql VOLATILE AS $fz$
DECLARE
	parts text[];
BEGIN
	CASE
	WHEN tn IN ('text', 'name', 'character varying') THEN
		IF nm = 'topic' THEN
			RETURN pg_temp.fuzz_pick(pg_temp.fuzz_pool('topic'));
		ELSIF nm ~ 'group' THEN
			RETURN pg_temp.fuzz_pick(pg_temp.fuzz_pool('group'));
		ELSIF tn = 'name' OR nm ~ 'role|grantee' THEN
			RETURN pg_temp.fuzz_pick(pg_temp.fuzz_pool('role'));
		ELSIF nm ~ 'privilege' THEN
			RETURN pg_temp.fuzz_pick(ARRAY[$$'send'$$, $$'receive'$$, $$'admin'$$, $$'monitor'$$, $$'all'$$]);
		ELSIF nm = 'start_from' THEN
			RETURN pg_temp.fuzz_pick(ARRAY[$$'now'$$, $$'earliest'$$]);
		END IF;
		RETURN pg_temp.fuzz_pick(ARRAY[$$'k0'$$, $$'k1'$$, $$'k2'$$, $$'some error'$$,
			quote_literal('k' || pg_temp.fuzz_int(0, 9))]);
	WHEN tn = 'text[]' THEN
		RETURN pg_temp.fuzz_pick(ARRAY['NULL', $$'{a}'$$, $$'{a,b}'$$, $$'{k0,k1,k2}'$$, $$'{b}'$$]);
	WHEN tn IN ('integer', 'smallint') THEN
		RETURN pg_temp.fuzz_pick(ARRAY['0', '1', '2', '3', '16', '100']);
	WHEN tn = 'bigint' THEN
		RETURN pg_temp.fuzz_id(recent, fn ~ 'half');
	WHEN tn = 'bigint[]' THEN
		SELECT array_agg(pg_temp.fuzz_id(recent, fn ~ 'half')) INTO parts
		  FROM generate_series(1, pg_temp.fuzz_int(1, 5));
		RETURN 'ARRAY[' || array_to_string(parts, ', ') || ']::bigint[]';
	WHEN tn = 'interval' THEN
		IF nm = 'wait' THEN
			RETURN pg_temp.fuzz_pick(ARRAY[$$'0'$$, $$'1 ms'$$, $$'10 ms'$$]);
		ELSIF nm = 'older_than' THEN
			RETURN pg_temp.fuzz_pick(ARRAY[$$'0'$$, $$'1 ms'$$, $$'1 day'$$]);
		END IF;
		RETURN pg_temp.fuzz_pick(ARRAY[$$'1 ms'$$, $$'10 ms'$$, $$'1 s'$$, $$'30 s'$$, $$'1 day'$$]);
	WHEN tn = 'interval[]' THEN
		RETURN pg_temp.fuzz_pick(ARRAY[$$'{1 ms}'$$, $$'{1 ms,2 ms}'$$, $$'{1 s,1 min}'$$]);
	WHEN tn = 'jsonb' THEN
		IF nm = 'headers' THEN
			RETURN pg_temp.fuzz_pick(ARRAY['NULL', $$'{}'$$, $$'{"h": "v"}'$$]);
		END IF;
		RETURN format($$'{"i": %s, "s": "x"}'$$, pg_temp.fuzz_int(0, 1000));
	WHEN tn = 'jsonb[]' THEN
		SELECT array_agg(format($$'{"i": %s}'::jsonb$$, g)) INTO parts
		  FROM generate_series(1, pg_temp.fuzz_int(1, 5)) g;
		RETURN 'ARRAY[' || array_to_string(parts, ', ') || ']';
	WHEN tn = 'regprocedure' THEN
		IF nm ~ 'check' THEN
			RETURN pg_temp.fuzz_pick(ARRAY['NULL', $$'-'$$, $$'fx_check(tx_message.message)'$$,
				$$'fx_check_fail(tx_message.message)'$$, $$'fx_reenter(tx_message.message)'$$,
				$$'fx_strict(tx_message.message)'$$, $$'fx_secdef(tx_message.message)'$$]);
		END IF;
		RETURN pg_temp.fuzz_pick(ARRAY['NULL', 'NULL', $$'fx_ok(tx_message.message)'$$,
			$$'fx_bool(tx_message.message)'$$, $$'fx_text(tx_message.message)'$$,
			$$'fx_fail(tx_message.message)'$$, $$'fx_reenter(tx_message.message)'$$,
			$$'fx_record(tx_message.message)'$$]);
	WHEN tn = 'boolean' THEN
		RETURN pg_temp.fuzz_pick(ARRAY['true', 'false']);
	ELSE
		RETURN NULL;
	END CASE;
END $fz$;

-- An SQL expression for a value of type t for the argument named nm: a
-- plausible one if sane, else anything from NULL to hostile.
CREATE FUNCTION pg_temp.fuzz_expr(t oid, nm text, recent bigint[], sane boolean, fn text) RETURNS text
LANGUAGE plpgsql VOLATILE AS $fz$
DECLARE
	tn text := format_type(t, NULL);
	lim bigint := coalesce(pg_size_bytes(nullif(current_setting('tx_message.max_payload_size', true), '')),
						   1048576);
	parts text[];
	k int;
	v text;
BEGIN
	nm := lower(coalesce(nm, ''));
	IF sane AND random() < 0.9 THEN
		v := pg_temp.fuzz_sane(tn, nm, recent, fn);
		IF v IS NOT NULL THEN
			RETURN v;
		END IF;
	END IF;
	IF random() < 0.06 THEN
		RETURN 'NULL';
	END IF;
	CASE
	WHEN tn IN ('text', 'name', 'character varying') THEN
		IF nm = 'topic' AND random() < 0.5 THEN
			RETURN pg_temp.fuzz_pick(pg_temp.fuzz_pool('topic'));
		ELSIF nm ~ 'group' AND random() < 0.5 THEN
			RETURN pg_temp.fuzz_pick(pg_temp.fuzz_pool('group'));
		ELSIF (tn = 'name' OR nm ~ 'role|grantee') AND random() < 0.6 THEN
			RETURN pg_temp.fuzz_pick(pg_temp.fuzz_pool('role') || ARRAY[$$'PUBLIC'$$, $$'-'$$,
				$$''$$, $$'fuzz_no_such_role'$$, $$repeat('r', 100)$$, $$'"fuzz_nopriv"'$$]);
		ELSIF nm ~ 'privilege' AND random() < 0.6 THEN
			RETURN pg_temp.fuzz_pick(ARRAY[$$'send'$$, $$'receive'$$, $$'admin'$$, $$'monitor'$$,
				$$'all'$$, $$'ALL'$$, $$'Send'$$, $$' send'$$, $$'send,receive'$$, $$'select'$$,
				$$''$$]);
		ELSIF nm = 'start_from' AND random() < 0.6 THEN
			RETURN pg_temp.fuzz_pick(ARRAY[$$'now'$$, $$'earliest'$$, $$'latest'$$, $$'NOW'$$]);
		END IF;
		RETURN pg_temp.fuzz_pick(ARRAY[$$''$$, $$'fz-a'$$, $$'fz-none'$$, $$'FZ-A'$$, $$'fz-a '$$,
			$$'g-none'$$, $$'x'$$,
			$$repeat('x', 127)$$, $$repeat('x', 128)$$, $$repeat('x', 300)$$, $$repeat('é', 127)$$,
			$$'it''s'$$, $$'''; DROP TABLE x; --'$$, $$'"q"'$$, $$'ünïcødé-😀'$$, $$'a b'$$,
			$$'-'$$, $$'.'$$, $$'..'$$, $$'now'$$, $$'earliest'$$, $$'NULL'$$, $$chr(1)$$,
			$$E'tab\there'$$, $$E'line\nbreak'$$, $$'%s%n%x'$$, $$'\'$$, $$'public'$$,
			$$repeat('y', 100000)$$, quote_literal(md5(random()::text)),
			quote_literal('fz-r' || pg_temp.fuzz_int(0, 19)),
			quote_literal('g-r' || pg_temp.fuzz_int(0, 9))]);
	WHEN tn = 'text[]' THEN
		RETURN pg_temp.fuzz_text_array();
	WHEN tn IN ('integer', 'smallint') THEN
		IF nm = 'max_messages' AND random() < 0.5 THEN
			RETURN pg_temp.fuzz_pick(ARRAY['1', '3', '100', '100000', '100001', '0']);
		END IF;
		RETURN pg_temp.fuzz_pick(ARRAY['0', '-1', '1', '2', '3', '15', '100', '100000', '100001',
			'2147483647', '(-2147483647 - 1)', pg_temp.fuzz_int(0, 50)::text]);
	WHEN tn = 'bigint' THEN
		RETURN pg_temp.fuzz_id(recent);
	WHEN tn = 'bigint[]' THEN
		IF random() < 0.6 THEN
			k := pg_temp.fuzz_int(1, 5);
			SELECT array_agg(pg_temp.fuzz_id(recent)) INTO parts FROM generate_series(1, k);
			RETURN 'ARRAY[' || array_to_string(parts, ', ') || ']::bigint[]';
		END IF;
		RETURN pg_temp.fuzz_pick(ARRAY[$$'{}'$$, $$'{NULL}'$$, $$'{{1,2},{3,4}}'$$, $$'[0:1]={1,2}'$$,
			format('ARRAY[%s, NULL]::bigint[]', pg_temp.fuzz_id(recent)),
			format('ARRAY[%1$s, %1$s]::bigint[]', pg_temp.fuzz_id(recent)),
			$$ARRAY[-1, 0, 9223372036854775807]$$,
			$$(SELECT array_agg(g) FROM generate_series(1, 20000) g)$$]);
	WHEN tn = 'interval' THEN
		IF nm = 'wait' THEN
			-- keep the batch busy calling, not sleeping
			RETURN pg_temp.fuzz_pick(ARRAY[$$'0'$$, $$'-1 s'$$, $$'1 ms'$$, $$'10 ms'$$, $$'1 us'$$,
				$$'-178000000 years'$$, $$'1 mon -30 days'$$]);
		END IF;
		RETURN pg_temp.fuzz_pick(ARRAY[$$'0'$$, $$'-1 s'$$, $$'1 ms'$$, $$'1 us'$$, $$'1 s'$$,
			$$'30 s'$$, $$'1 day'$$, $$'1 mon'$$, $$'1 mon -30 days'$$, $$'-1 day 24:00:00'$$,
			$$'100 years'$$, $$'1000 years'$$, $$'178000000 years'$$, $$'-178000000 years'$$]);
	WHEN tn = 'interval[]' THEN
		RETURN pg_temp.fuzz_pick(ARRAY[$$'{}'$$, $$'{NULL}'$$, $$'{1 s}'$$, $$'{1 ms,2 ms}'$$,
			$$'{-1 s}'$$, $$'{0}'$$, $$'{1 mon}'$$, $$'{100 years}'$$, $$'{{1 s,2 s},{3 s,4 s}}'$$,
			$$'[0:1]={1 s,2 s}'$$, $$'{1 ms,NULL}'$$,
			$$(SELECT array_agg(make_interval(secs => g)) FROM generate_series(1, 20000) g)$$]);
	WHEN tn = 'jsonb' THEN
		RETURN pg_temp.fuzz_json(nm, lim);
	WHEN tn = 'jsonb[]' THEN
		IF random() < 0.6 THEN
			k := pg_temp.fuzz_int(1, 5);
			SELECT array_agg('(' || pg_temp.fuzz_json('payload', lim) || ')::jsonb') INTO parts
			  FROM generate_series(1, k);
			RETURN 'ARRAY[' || array_to_string(parts, ', ') || ']';
		END IF;
		RETURN pg_temp.fuzz_pick(ARRAY[$$'{}'$$, $$'{NULL}'$$, $$'{1,NULL}'$$, $$'{{1,2},{3,4}}'$$,
			$$'[0:1]={1,2}'$$,
			$$(SELECT array_agg(jsonb_build_object('i', g)) FROM generate_series(1, 20000) g)$$]);
	WHEN tn = 'regprocedure' THEN
		RETURN pg_temp.fuzz_pick(ARRAY[$$'fx_ok(tx_message.message)'$$,
			$$'fx_bool(tx_message.message)'$$, $$'fx_text(tx_message.message)'$$,
			$$'fx_fail(tx_message.message)'$$, $$'fx_check(tx_message.message)'$$,
			$$'fx_check_fail(tx_message.message)'$$, $$'fx_reenter(tx_message.message)'$$,
			$$'fx_strict(tx_message.message)'$$, $$'fx_record(tx_message.message)'$$,
			$$'fx_noexec(tx_message.message)'$$, $$'fx_secdef(tx_message.message)'$$,
			$$'fx_int(integer)'$$, $$'fx_two(tx_message.message,integer)'$$,
			$$'fx_proc(tx_message.message)'$$, $$'fx_setof(tx_message.message)'$$,
			$$'fx_agg(tx_message.message)'$$, $$'now()'$$, $$'0'$$, $$'-'$$, $$'999999'$$,
			$$'tx_send(text,jsonb,text,text[],jsonb,interval)'$$, $$'textlen(text)'$$,
			$$'fx_missing(tx_message.message)'$$]);
	WHEN tn = 'boolean' THEN
		RETURN pg_temp.fuzz_pick(ARRAY['true', 'false']);
	WHEN tn = 'timestamp with time zone' THEN
		RETURN pg_temp.fuzz_pick(ARRAY[$$'infinity'$$, $$'-infinity'$$, $$'epoch'$$,
			quote_literal(now()::text), quote_literal((now() + interval '1 hour')::text)]);
	WHEN tn = 'regrole' OR tn = 'oid' THEN
		RETURN pg_temp.fuzz_pick(ARRAY['0', '1', '10', '4294967295']);
	ELSE
		IF tn LIKE '%[]' AND random() < 0.5 THEN
			RETURN $$'{}'$$;
		END IF;
		RETURN 'NULL';
	END CASE;
END $fz$;

-- The statement of one call of f, with random arguments: positional or
-- named, with some of the defaulted ones left out.
CREATE FUNCTION pg_temp.fuzz_build(f pg_temp.fuzz_api, recent bigint[]) RETURNS text
LANGUAGE plpgsql VOLATILE AS $fz$
DECLARE
	n int := cardinality(f.argtypes);
	required int := n - f.ndefaults;
	args text[] := '{}';
	named boolean;
	keep int;
	call text;
	-- half the calls are sane: plausible arguments, to reach the engine
	sane boolean := random() < 0.5;
BEGIN
	named := f.argnames IS NOT NULL AND NOT f.variadic AND '' <> ALL (f.argnames)
			 AND random() < 0.35;
	IF named THEN
		FOR i IN 1..n LOOP
			CONTINUE WHEN i > required AND random() < 0.5;
			CONTINUE WHEN i <= required AND NOT sane AND random() < 0.02;	-- a missing argument
			args := args || format('%I => (%s)::%s', f.argnames[i],
								   pg_temp.fuzz_expr(f.argtypes[i], f.argnames[i], recent, sane, f.label),
								   format_type(f.argtypes[i], NULL));
		END LOOP;
	ELSE
		keep := n - floor(random() * (f.ndefaults + 1))::int;
		FOR i IN 1..keep LOOP
			args := args || format('%s(%s)::%s', CASE WHEN f.variadic AND i = n THEN 'VARIADIC ' END,
								   pg_temp.fuzz_expr(f.argtypes[i], f.argnames[i], recent, sane, f.label),
								   format_type(f.argtypes[i], NULL));
		END LOOP;
	END IF;
	call := f.qname || '(' || array_to_string(args, ', ') || ')';
	IF f.prokind = 'p' THEN
		RETURN 'CALL ' || call;
	ELSIF f.returns_ids THEN
		RETURN 'SELECT count(*) || '':'' || coalesce(string_agg(msg_id::text, '',''), '''') FROM ' || call;
	ELSIF f.retset THEN
		RETURN 'SELECT count(*) FROM ' || call;
	END IF;
	RETURN 'SELECT ' || call;
END $fz$;

-- One random call's statement, for the test's prepared-transaction rounds.
CREATE FUNCTION pg_temp.fuzz_gen() RETURNS text
LANGUAGE plpgsql VOLATILE AS $fz$
DECLARE
	f pg_temp.fuzz_api;
BEGIN
	SELECT * INTO f FROM pg_temp.fuzz_api ORDER BY random() LIMIT 1;
	RETURN pg_temp.fuzz_build(f, '{}');
END $fz$;

-- Whether a successful call of f that returned res says it did something.
CREATE FUNCTION pg_temp.fuzz_effect(f pg_temp.fuzz_api, res text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
	SELECT NOT f.readonly AND CASE
		WHEN f.prokind = 'p' OR f.rettype = 'void'::regtype THEN true
		WHEN f.returns_ids OR f.retset THEN split_part(res, ':', 1) NOT IN ('0', '')
		WHEN f.rettype = 'boolean'::regtype THEN res IN ('t', 'true')
		WHEN f.rettype IN ('integer'::regtype, 'bigint'::regtype, 'smallint'::regtype,
						   'numeric'::regtype) THEN coalesce(res, '0') <> '0'
		ELSE res IS NOT NULL
	END $$;

CREATE FUNCTION pg_temp.fuzz_flush(fns text[], sts text[], effs boolean[],
								   bad text[], effects text[]) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO pg_temp.fuzz_stats AS s (fn, state, effect, n)
	SELECT fn, st, ef, count(*) FROM unnest(fns, sts, effs) AS u(fn, st, ef) GROUP BY 1, 2, 3
	ON CONFLICT (fn, state, effect) DO UPDATE SET n = s.n + excluded.n;
	INSERT INTO pg_temp.fuzz_bad SELECT bad[i], bad[i + 1], bad[i + 2], bad[i + 3]
	  FROM generate_series(1, coalesce(cardinality(bad), 0), 4) i;
	INSERT INTO pg_temp.fuzz_effects SELECT effects[i], effects[i + 1], effects[i + 2]
	  FROM generate_series(1, coalesce(cardinality(effects), 0), 3) i;
$$;

CREATE PROCEDURE pg_temp.fuzz_batch(p_seed float8, p_max int, p_ms int, p_log boolean, p_tag text)
LANGUAGE plpgsql AS $fz$
DECLARE
	deadline timestamptz := clock_timestamp() + p_ms * interval '1 ms';
	f pg_temp.fuzz_api;
	napi int;
	q text;
	res text;
	st text;
	msg text;
	eff boolean;
	fns text[] := '{}';
	sts text[] := '{}';
	effs boolean[] := '{}';
	bad text[] := '{}';
	effects text[] := '{}';
	neffects int := 0;
	recent bigint[] := '{}';
	i int := 0;
	k int;
BEGIN
	PERFORM setseed(p_seed);
	SELECT count(*) INTO napi FROM pg_temp.fuzz_api;
	WHILE i < p_max AND clock_timestamp() < deadline LOOP
		i := i + 1;
		k := 1 + floor(random() * napi)::int;
		SELECT * INTO f FROM pg_temp.fuzz_api WHERE ord = k;
		q := pg_temp.fuzz_build(f, recent[greatest(cardinality(recent) - 40, 1):]);
		IF p_log THEN
			RAISE LOG 'txm-fuzz % #%: %', p_tag, i, left(q, 3000);
		END IF;
		res := NULL;
		msg := NULL;
		BEGIN
			IF f.prokind = 'p' THEN
				EXECUTE q;
			ELSE
				EXECUTE q INTO res;
			END IF;
			st := '00000';
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
		END;
		eff := st = '00000' AND pg_temp.fuzz_effect(f, res);
		fns := fns || f.label;
		sts := sts || st;
		effs := effs || eff;
		IF st ~ '^(XX|58)' THEN
			bad := bad || ARRAY[f.label, st, msg, q];
		END IF;
		IF eff AND neffects < 25 THEN
			neffects := neffects + 1;
			effects := effects || ARRAY[f.label, left(res, 200), q];
		END IF;
		-- remember ids this session sent or received, for the next calls
		IF st = '00000' AND res IS NOT NULL THEN
			IF f.returns_ids THEN
				recent := recent || string_to_array(nullif(split_part(res, ':', 2), ''), ',')::bigint[];
			ELSIF f.rettype = 'bigint'::regtype AND f.retset = false AND res ~ '^\d{7,}$' THEN
				recent := recent || res::bigint;
			END IF;
		END IF;
		-- end the transaction now and then, committing or rolling back
		IF random() < 0.15 THEN
			IF random() < 0.25 THEN
				IF p_log THEN
					RAISE LOG 'txm-fuzz % #%: ROLLBACK', p_tag, i;
				END IF;
				ROLLBACK;
			ELSIF p_log THEN
				RAISE LOG 'txm-fuzz % #%: COMMIT', p_tag, i;
			END IF;
			PERFORM pg_temp.fuzz_flush(fns, sts, effs, bad, effects);
			COMMIT;
			fns := '{}'; sts := '{}'; effs := '{}'; bad := '{}'; effects := '{}';
		END IF;
	END LOOP;
	PERFORM pg_temp.fuzz_flush(fns, sts, effs, bad, effects);
	COMMIT;
END $fz$;

-- Superuser only: the pools every session draws names and ids from, as
-- statements that fill pg_temp.fuzz_pools (the test hands them to each
-- fuzzing session, whose role may see none of these rows).  The topics of
-- focus are drawn more often than the others.
CREATE FUNCTION pg_temp.fuzz_snapshot(focus text[] DEFAULT '{}') RETURNS SETOF text
LANGUAGE plpgsql AS $fz$
DECLARE
	t record;
	ids text[] := '{}';
	part text[];
	groups text[] := '{}';
BEGIN
	FOR t IN
		SELECT c.oid::regclass AS rel,
			   bool_or(a.attname = 'pos') AS has_pos,
			   bool_or(a.attname = 'msg_id') AS has_msg_id,
			   bool_or(a.attname = 'consumer_group') AS has_group
		  FROM pg_class c
		  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		 WHERE c.relnamespace = 'tx_message'::regnamespace AND c.relkind IN ('r', 'p')
		 GROUP BY c.oid
	LOOP
		IF t.has_pos THEN
			EXECUTE format('SELECT array_agg(coalesce(msg_id, pos)::text) FROM
							(SELECT * FROM %s ORDER BY pos DESC LIMIT 15) s', t.rel) INTO part;
			ids := ids || coalesce(part, '{}');
		ELSIF t.has_msg_id THEN
			EXECUTE format('SELECT array_agg(msg_id::text) FROM
							(SELECT msg_id FROM %s ORDER BY msg_id DESC LIMIT 15) s', t.rel) INTO part;
			ids := ids || coalesce(part, '{}');
			EXECUTE format('SELECT array_agg(msg_id::text) FROM
							(SELECT msg_id FROM %s ORDER BY random() LIMIT 5) s', t.rel) INTO part;
			ids := ids || coalesce(part, '{}');
		END IF;
		IF t.has_group THEN
			EXECUTE format('SELECT array_agg(DISTINCT quote_literal(consumer_group)) FROM %s
							 WHERE consumer_group IS NOT NULL', t.rel) INTO part;
			groups := groups || coalesce(part, '{}');
		END IF;
	END LOOP;
	RETURN NEXT format('INSERT INTO pg_temp.fuzz_pools VALUES (%L, %L);', 'id',
		(SELECT coalesce(array_agg(DISTINCT i), '{}') FROM unnest(ids) i WHERE i IS NOT NULL));
	RETURN NEXT format('INSERT INTO pg_temp.fuzz_pools VALUES (%L, %L);', 'group',
		(SELECT array_agg(DISTINCT g) FROM unnest(groups || ARRAY[$$'g-pull'$$, $$'g-new1'$$,
			$$'g-new2'$$]) g));
	RETURN NEXT format('INSERT INTO pg_temp.fuzz_pools VALUES (%L, %L);', 'topic',
		(SELECT array_agg(DISTINCT x) FROM (
			SELECT quote_literal(topic) AS x FROM tx_message.topics
			UNION ALL SELECT $$'fz-a'$$) s)
		-- the focus topics, if any, are most calls' topics
		|| (SELECT coalesce(array_agg(quote_literal(f)), '{}') FROM unnest(focus) f, generate_series(1, 10)));
	RETURN NEXT format('INSERT INTO pg_temp.fuzz_pools VALUES (%L, %L);', 'half',
		(SELECT coalesce(array_agg(msg_id::text), '{}') FROM (
			SELECT msg_id FROM tx_message.half_messages WHERE state = 'half'
			 ORDER BY msg_id DESC LIMIT 30) h));
	RETURN NEXT format('INSERT INTO pg_temp.fuzz_pools VALUES (%L, %L);', 'role',
		(SELECT array_agg(DISTINCT x) FROM (
			SELECT quote_literal(rolname) AS x FROM pg_roles
			 WHERE rolname ~ '^fuzz_' OR rolname IN ('pg_monitor', current_user)
			UNION ALL SELECT $$'public'$$) s));
END $fz$;

RESET client_min_messages;
