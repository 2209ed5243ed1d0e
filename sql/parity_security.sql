-- Security of the 1.1 features (dead-letter topics, tx_seek, dedup keys,
-- header filters), as an attacker sees them: each block tries an attack as
-- a role that lacks one privilege (said at each block), shows that it fails
-- with the right SQLSTATE, and then a superuser checks that nothing was
-- written, moved or copied.  Message ids change from run to run: only
-- comparisons of them are shown.  This test has a database of its own.
\set VERBOSITY terse
CREATE DATABASE tx_message_parity_security;
\c tx_message_parity_security
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS tx_message;
RESET client_min_messages;

-- Run maintenance cycles in this session until a condition holds (10 s at most).
CREATE PROCEDURE maintain_until(condition text, timeout interval DEFAULT '10 s')
LANGUAGE plpgsql AS $$
DECLARE
	deadline timestamptz := clock_timestamp() + timeout;
	done boolean;
BEGIN
	LOOP
		PERFORM tx_run_maintenance();
		COMMIT;
		EXECUTE 'SELECT ' || condition INTO done;
		EXIT WHEN done;
		IF clock_timestamp() > deadline THEN
			RAISE EXCEPTION 'timed out waiting for %', condition;
		END IF;
		PERFORM pg_sleep(0.02);
	END LOOP;
END $$;

-- How many dead-letter copies of a message the log holds, in any topic
-- (dropped ones included: the log tables, not the view).
CREATE FUNCTION copies_of(msg_id bigint) RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM (SELECT headers FROM tx_message.log_0
	                      UNION ALL SELECT headers FROM tx_message.log_1
	                      UNION ALL SELECT headers FROM tx_message.log_2) l
	 WHERE l.headers->'dead_letter'->>'msg_id' = msg_id::text $$;

--------------------------------------------------------------------------
-- The roles and topics
--------------------------------------------------------------------------
CREATE ROLE ps_nobody;                   -- given nothing at all
CREATE ROLE ps_team NOLOGIN;             -- owns consumer groups
CREATE ROLE ps_member IN ROLE ps_team;   -- one of its services
CREATE ROLE ps_outsider;                 -- may receive from the team's topics, not in the team
CREATE ROLE ps_admin;                    -- 'admin' on ps.orders, through tx_grant
CREATE ROLE ps_sender;                   -- 'send' on ps.dedup, nothing else
CREATE ROLE ps_creator;                  -- may create topics
CREATE ROLE ps_sideadmin;                -- 'admin' on ps.side
GRANT EXECUTE ON FUNCTION tx_create_topic(text, interval, regprocedure, interval, interval, integer, boolean, text, text)
	TO ps_creator;
SELECT tx_create_topic('ps.orders');
SELECT tx_create_topic('ps.private');    -- nobody but the superuser may send to it
SELECT tx_create_topic('ps.outbox');     -- the outsider may send to it
SELECT tx_grant('ps.orders', 'ps_team', 'receive');
SELECT tx_grant('ps.orders', 'ps_outsider', 'receive');
SELECT tx_grant('ps.orders', 'ps_admin', 'admin');
SELECT tx_grant('ps.outbox', 'ps_outsider', 'send');
SET ROLE ps_team;
SELECT tx_subscribe('ps.orders', 'ps.billing');
RESET ROLE;

--------------------------------------------------------------------------
-- 1. Naming a dead-letter topic of a subscription without 'send' on it.
-- ps_outsider holds 'receive' on ps.orders, 'send' on ps.outbox only.
--------------------------------------------------------------------------
SET ROLE ps_outsider;
-- its own new group, copies to a topic it may not send to
SELECT tx_subscribe('ps.orders', 'ps.outsider', max_retries => 0, dead_letter_topic => 'ps.private');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.outsider', dead_letter_topic => 'ps.private', start_from => 'earliest');
\echo :SQLSTATE
-- a topic that does not exist, the topic itself, no name
SELECT tx_subscribe('ps.orders', 'ps.outsider', dead_letter_topic => 'ps.nowhere');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.outsider', dead_letter_topic => 'ps.orders');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.outsider', dead_letter_topic => '');
\echo :SQLSTATE
-- the team's group, copies to the outsider's own topic: the group is not its
SELECT tx_subscribe('ps.orders', 'ps.billing', dead_letter_topic => 'ps.outbox');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.billing', max_retries => 0, dead_letter_topic => 'ps.outbox');
\echo :SQLSTATE
RESET ROLE;
-- a member of the team, on its own group, to a topic the team may not send to
SET ROLE ps_member;
SELECT tx_subscribe('ps.orders', 'ps.billing', dead_letter_topic => 'ps.private');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.billing', dead_letter_topic => 'ps.outbox');
\echo :SQLSTATE
RESET ROLE;
-- nothing written: no group of the outsider, ps.billing as it was
SELECT consumer_group, owner::text FROM tx_message.consumer_groups ORDER BY 1;
SELECT topic, consumer_group, max_retries, dead_letter_topic, dead_letter_owner::text, filter
  FROM tx_message.subscriptions ORDER BY 1, 2;

--------------------------------------------------------------------------
-- 2. Naming a topic's (check-back) dead-letter topic without 'send' on it,
-- or without 'admin' on the topic.  ps_admin holds 'admin' on ps.orders,
-- ps_outsider 'send' on ps.outbox, ps_creator may create topics.
--------------------------------------------------------------------------
SET ROLE ps_admin;
SELECT tx_alter_topic('ps.orders', dead_letter_topic => 'ps.private');
\echo :SQLSTATE
SELECT tx_alter_topic('ps.orders', dead_letter_topic => 'ps.outbox');
\echo :SQLSTATE
SELECT tx_alter_topic('ps.orders', retention => '1 day', dead_letter_topic => 'ps.private');
\echo :SQLSTATE
SELECT tx_alter_topic('ps.orders', dead_letter_topic => 'ps.orders');
\echo :SQLSTATE
-- 'admin' on ps.orders gives nothing on the dead-letter topic
SELECT tx_grant('ps.private', 'ps_admin', 'send');
\echo :SQLSTATE
SELECT tx_grant('ps.outbox', 'ps_admin', 'send');
\echo :SQLSTATE
RESET ROLE;
SET ROLE ps_outsider;
-- 'send' on the dead-letter topic gives nothing on the topic
SELECT tx_alter_topic('ps.orders', dead_letter_topic => 'ps.outbox');
\echo :SQLSTATE
SELECT tx_alter_topic('ps.orders', notify_channel => 'ps_outsider_channel');
\echo :SQLSTATE
RESET ROLE;
SET ROLE ps_nobody;
SELECT tx_alter_topic('ps.orders', dead_letter_topic => '');
\echo :SQLSTATE
SELECT tx_alter_topic('ps.orders', notify_channel => '');
\echo :SQLSTATE
RESET ROLE;
SET ROLE ps_creator;
SELECT tx_create_topic('ps.mine');
-- a new topic whose dead letters go where it may not send
SELECT tx_create_topic('ps.new', dead_letter_topic => 'ps.private');
\echo :SQLSTATE
-- an existing topic is left as it is, even with if_not_exists
SELECT tx_create_topic('ps.orders', if_not_exists => true, dead_letter_topic => 'ps.mine',
                       notify_channel => 'ps_creator_channel');
SELECT tx_create_topic('ps.orders', dead_letter_topic => 'ps.mine');
\echo :SQLSTATE
SELECT tx_alter_topic('ps.orders', dead_letter_topic => 'ps.mine');
\echo :SQLSTATE
RESET ROLE;
SELECT topic, owner::text = current_user AS superuser_owns, retention, dead_letter_topic,
       dead_letter_owner::text, notify_channel
  FROM tx_message.topics WHERE topic IN ('ps.orders', 'ps.new', 'ps.mine') ORDER BY 1;
SELECT topic, grantee, privilege FROM tx_message.grants WHERE topic LIKE 'ps.%' ORDER BY 1, 2, 3;

--------------------------------------------------------------------------
-- 3. Dead-letter copies go out only while the role that named the
-- dead-letter topic holds 'send' on it.  ps_member names ps.dlq, on which
-- its team ps_team holds 'send'.
--------------------------------------------------------------------------
SELECT tx_create_topic('ps.jobs');
SELECT tx_create_topic('ps.dlq');
SELECT tx_grant('ps.jobs', 'ps_team', 'receive');
SELECT tx_grant('ps.jobs', 'ps_outsider', 'receive');
SELECT tx_grant('ps.dlq', 'ps_team', 'send');
SET ROLE ps_member;
SELECT tx_subscribe('ps.jobs', 'ps.jobs-g', max_retries => 0, dead_letter_topic => 'ps.dlq');
RESET ROLE;
SELECT dead_letter_topic, dead_letter_owner::text FROM tx_message.subscriptions
 WHERE consumer_group = 'ps.jobs-g';
-- while it holds 'send': the copy goes to ps.dlq
SELECT tx_send('ps.jobs', '{"job": 1}') AS j1 \gset
SET ROLE ps_member;
SELECT msg_id = :j1 AS same FROM tx_receive('ps.jobs-g', 10, wait => '5 s');
SELECT tx_nack('ps.jobs-g', :j1, 'failed on purpose');
RESET ROLE;
SELECT topic, payload, headers->'dead_letter'->>'topic' AS from_topic,
       headers->'dead_letter'->>'consumer_group' AS from_group,
       headers->'dead_letter'->>'reason' AS reason, headers->'dead_letter'->>'last_error' AS last_error
  FROM tx_message.messages WHERE headers->'dead_letter'->>'msg_id' = :'j1';
-- an outsider with 'receive' on ps.jobs cannot force a dead letter (and its
-- copy) in the team's group
SELECT tx_send('ps.jobs', '{"job": 2}') AS j2 \gset
SET ROLE ps_outsider;
SELECT * FROM tx_receive('ps.jobs-g', 10);
\echo :SQLSTATE
SELECT tx_nack('ps.jobs-g', :j2, 'forced');
\echo :SQLSTATE
RESET ROLE;
SELECT count(*) AS dead_j2 FROM tx_message.dead_letters WHERE msg_id = :j2;
SELECT copies_of(:j2) AS copies_j2;
-- the naming role leaves the team: no copy, the dead letter is still kept
REVOKE ps_team FROM ps_member;
SELECT msg_id = :j2 AS same FROM tx_receive('ps.jobs-g', 10, wait => '5 s');
SELECT tx_nack('ps.jobs-g', :j2, 'failed after the role left the team');
SELECT consumer_group, reason, last_error FROM tx_message.dead_letters WHERE msg_id = :j2;
SELECT copies_of(:j2) AS copies_j2;
GRANT ps_team TO ps_member;
-- the team loses 'send' on ps.dlq: no copy either
SELECT tx_revoke('ps.dlq', 'ps_team', 'send');
SELECT tx_send('ps.jobs', '{"job": 3}') AS j3 \gset
SET ROLE ps_member;
SELECT msg_id = :j3 AS same FROM tx_receive('ps.jobs-g', 10, wait => '5 s');
SELECT tx_nack('ps.jobs-g', :j3, 'failed after the revoke');
-- and it cannot name ps.dlq again, nor another topic it may not send to
SELECT tx_subscribe('ps.jobs', 'ps.jobs-g', max_retries => 0, dead_letter_topic => 'ps.dlq');
\echo :SQLSTATE
SELECT tx_subscribe('ps.jobs', 'ps.jobs-g', max_retries => 0, dead_letter_topic => 'ps.private');
\echo :SQLSTATE
RESET ROLE;
SELECT consumer_group, reason FROM tx_message.dead_letters WHERE msg_id = :j3;
SELECT copies_of(:j3) AS copies_j3;
SELECT dead_letter_topic, dead_letter_owner::text FROM tx_message.subscriptions
 WHERE consumer_group = 'ps.jobs-g';
-- so far one copy: that of j1
SELECT count(*) AS copies FROM tx_message.messages WHERE headers ? 'dead_letter';
-- a dead-letter topic that was dropped (with cascade: it is named) gets
-- nothing, and nothing else does
SELECT tx_grant('ps.dlq', 'ps_team', 'send');
SELECT tx_drop_topic('ps.dlq');
\echo :SQLSTATE
SELECT tx_drop_topic('ps.dlq', cascade => true);
SELECT tx_send('ps.jobs', '{"job": 4}') AS j4 \gset
SET ROLE ps_member;
SELECT msg_id = :j4 AS same FROM tx_receive('ps.jobs-g', 10, wait => '5 s');
SELECT tx_nack('ps.jobs-g', :j4, 'failed after the drop');
RESET ROLE;
SELECT consumer_group, reason FROM tx_message.dead_letters WHERE msg_id = :j4;
SELECT copies_of(:j4) AS copies_j4;
-- in the log, the copy of j1 only
SELECT copies_of(:j1) AS copies_j1, copies_of(:j2) + copies_of(:j3) + copies_of(:j4) AS others;

--------------------------------------------------------------------------
-- 4. Moving another team's position with tx_seek.  The group ps.seekers
-- of ps_team reads ps.seek and ps.side; ps_outsider holds 'receive' on
-- ps.seek, ps_sideadmin 'admin' on ps.side.
--------------------------------------------------------------------------
SELECT tx_create_topic('ps.seek');
SELECT tx_create_topic('ps.side');
SELECT tx_grant('ps.seek', 'ps_team', 'receive');
SELECT tx_grant('ps.seek', 'ps_outsider', 'receive');
SELECT tx_grant('ps.side', 'ps_team', 'receive');
SELECT tx_grant('ps.side', 'ps_sideadmin', 'admin');
SET ROLE ps_team;
SELECT tx_subscribe('ps.seek', 'ps.seekers');
SELECT tx_subscribe('ps.side', 'ps.seekers');
RESET ROLE;
SELECT count(*) AS sent FROM tx_send_batch('ps.seek', ARRAY['{"s": 1}', '{"s": 2}', '{"s": 3}']::jsonb[]);
SET ROLE ps_member;
SELECT count(*) AS received FROM (
	SELECT tx_ack('ps.seekers', msg_id) FROM tx_receive('ps.seekers', 10, wait => '5 s')) a;
RESET ROLE;
CALL maintain_until($$
	(SELECT st.done_seq FROM tx_message.sub_state st JOIN tx_message.subscriptions s USING (sub_id)
	  WHERE s.consumer_group = 'ps.seekers' AND s.topic = 'ps.seek')
	= (SELECT sent_total FROM tx_message.stats WHERE topic = 'ps.seek' AND consumer_group IS NULL) $$);
SELECT st.done_seq AS seek_done FROM tx_message.sub_state st JOIN tx_message.subscriptions s USING (sub_id)
 WHERE s.consumer_group = 'ps.seekers' AND s.topic = 'ps.seek' \gset
-- an outsider that may receive from the topic, not in the team
SET ROLE ps_outsider;
SELECT tx_seek('ps.seekers', 'ps.seek', 'earliest');
\echo :SQLSTATE
SELECT tx_seek('ps.seekers', 'ps.seek', 'latest');
\echo :SQLSTATE
SELECT tx_seek('ps.seekers', 'ps.seek', now() - interval '1 hour');
\echo :SQLSTATE
SELECT tx_seek('ps.seekers', 'ps.seek', '-infinity'::timestamptz);
\echo :SQLSTATE
SELECT tx_seek('ps.seekers', 'ps.seek', '2000-01-01 00:00:00+00');
\echo :SQLSTATE
RESET ROLE;
-- a role with nothing
SET ROLE ps_nobody;
SELECT tx_seek('ps.seekers', 'ps.seek', 'earliest');
\echo :SQLSTATE
RESET ROLE;
-- an admin of another topic the group reads
SET ROLE ps_sideadmin;
SELECT tx_seek('ps.seekers', 'ps.seek', 'earliest');
\echo :SQLSTATE
RESET ROLE;
-- an admin of a topic the group does not read
SET ROLE ps_admin;
SELECT tx_seek('ps.seekers', 'ps.seek', 'earliest');
\echo :SQLSTATE
RESET ROLE;
-- a member of the team whose team lost 'receive' on the topic
SELECT tx_revoke('ps.seek', 'ps_team', 'receive');
SET ROLE ps_member;
SELECT tx_seek('ps.seekers', 'ps.seek', 'earliest');
\echo :SQLSTATE
SELECT tx_seek('ps.seekers', 'ps.seek', '-infinity'::timestamptz);
\echo :SQLSTATE
RESET ROLE;
SELECT tx_grant('ps.seek', 'ps_team', 'receive');
-- the position did not move: nothing comes again
SELECT st.done_seq = :seek_done AS position_kept
  FROM tx_message.sub_state st JOIN tx_message.subscriptions s USING (sub_id)
 WHERE s.consumer_group = 'ps.seekers' AND s.topic = 'ps.seek';
SET ROLE ps_member;
SELECT count(*) AS redelivered FROM tx_receive('ps.seekers', 10);
-- while the team may: the same call works for its member
SELECT tx_seek('ps.seekers', 'ps.seek', 'earliest') AS ahead;
SELECT count(*) AS redelivered FROM (
	SELECT tx_ack('ps.seekers', msg_id) FROM tx_receive('ps.seekers', 10, wait => '5 s')) a;
RESET ROLE;

--------------------------------------------------------------------------
-- 5. Dedup keys.  ps_sender holds 'send' on ps.dedup only; ps_creator owns
-- ps.mine; ps_nobody holds nothing.
--------------------------------------------------------------------------
SELECT tx_create_topic('ps.dedup');
SELECT tx_grant('ps.dedup', 'ps_sender', 'send');
SELECT tx_send('ps.dedup', '{"card": "4111-victim"}', key => 'victim-key', dedup_key => 'ps-victim') AS victim \gset
SELECT tx_send_half('ps.dedup', '{"half": "victim"}', dedup_key => 'ps-victim-half') AS victim_half \gset
-- without 'send' a dedup key tells nothing
SET ROLE ps_nobody;
SELECT tx_send('ps.dedup', '{"forged": 0}', dedup_key => 'ps-victim');
\echo :SQLSTATE
SELECT tx_send_batch('ps.dedup', ARRAY['{"forged": 0}']::jsonb[], dedup_keys => ARRAY['ps-victim']);
\echo :SQLSTATE
SELECT tx_send_half('ps.dedup', '{"forged": 0}', dedup_key => 'ps-victim-half');
\echo :SQLSTATE
SELECT tx_send('ps.dedup', '{"forged": 0}', dedup_key => 'ps-victim', delay => '1 s');
\echo :SQLSTATE
RESET ROLE;
-- with 'send' only: a sender gets the id of the message that holds the key
-- (as documented) and stores nothing, but cannot read that message
SET ROLE ps_sender;
SELECT tx_send('ps.dedup', '{"forged": 1}', dedup_key => 'ps-victim') = :victim AS holder_id;
SELECT bool_and(id = :victim) AS holder_ids
  FROM tx_send_batch('ps.dedup', ARRAY['{"forged": 2}', '{"forged": 3}']::jsonb[],
                     dedup_keys => ARRAY['ps-victim', 'ps-victim']) id;
SELECT tx_send('ps.dedup', '{"forged": 4}', dedup_key => 'ps-victim', delay => '1 h') = :victim AS holder_id;
SELECT count(*) AS readable FROM tx_message.messages WHERE msg_id IN (:victim, :victim_half);
SELECT count(*) AS readable FROM tx_message.messages WHERE topic = 'ps.dedup';
SELECT * FROM tx_trace(:victim);
\echo :SQLSTATE
SELECT * FROM tx_find('ps.dedup', 'victim-key');
\echo :SQLSTATE
RESET ROLE;
-- a key is a topic's own: a key held on another topic gives nothing away,
-- and a key claimed there does not hold back a send here
SET ROLE ps_creator;
SELECT tx_send('ps.mine', '{"n": 1}', dedup_key => 'ps-victim') <> :victim AS own_message;
SELECT tx_send('ps.mine', '{"n": 2}', dedup_key => 'ps-future') AS squatted \gset
SELECT tx_send_half('ps.mine', '{"n": 3}', dedup_key => 'ps-victim-half') <> :victim_half AS own_half;
-- nor may it decide the victim's half message
SELECT tx_rollback_half(:victim_half);
\echo :SQLSTATE
SELECT tx_commit_half(:victim_half);
\echo :SQLSTATE
RESET ROLE;
SELECT tx_send('ps.dedup', '{"n": "future"}', dedup_key => 'ps-future') AS future \gset
SELECT :future <> :squatted AS not_squatted, count(*) AS stored
  FROM tx_message.messages WHERE msg_id = :future AND payload = '{"n": "future"}';
-- nothing forged was stored; the victim's messages are as they were
SELECT count(*) AS forged FROM tx_message.messages WHERE payload ? 'forged';
SELECT msg_id = :victim AS victim, payload, state FROM tx_message.messages
 WHERE msg_id IN (:victim, :victim_half) ORDER BY msg_id;
-- a topic that takes the name of a dropped one does not learn its keys' messages
SELECT tx_create_topic('ps.reborn');
SELECT tx_send('ps.reborn', '{"secret": "old"}', dedup_key => 'ps-old') AS old_id \gset
SELECT tx_drop_topic('ps.reborn');
SET ROLE ps_creator;
SELECT tx_create_topic('ps.reborn');
SELECT tx_send('ps.reborn', '{"new": true}', dedup_key => 'ps-old') <> :old_id AS new_message;
SELECT payload FROM tx_message.messages WHERE topic = 'ps.reborn';
RESET ROLE;

--------------------------------------------------------------------------
-- 6. Header filters.  ps_outsider holds 'receive' on ps.orders.
--------------------------------------------------------------------------
SET ROLE ps_outsider;
-- variables other than $key and $tags, wherever they hide
SELECT tx_subscribe('ps.orders', 'ps.filtered', filter => '$secret == 1');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.filtered', filter => '$key == "k" || $secret == 1');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.filtered', filter => '$.a == 1 && $secret == 1');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.filtered', filter => 'exists($.a ? (@ == $secret))');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.filtered', filter => '$.a[$i] == 1');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.filtered', filter => '$.a starts with $prefix');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.filtered', filter => '!($.a == -$n)');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.filtered', filter => '($.a == 1) is unknown || $tags[$last] == "x"');
\echo :SQLSTATE
-- not predicates
SELECT tx_subscribe('ps.orders', 'ps.filtered', filter => '$');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.filtered', filter => '$.a');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.filtered', filter => '$.a ? (@ == 1)');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.filtered', filter => '1 + 1');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.filtered', filter => '$.a.type()');
\echo :SQLSTATE
-- a filter on the team's group would silence it: the group is not its
SELECT tx_subscribe('ps.orders', 'ps.billing', filter => '$.region == "nowhere"');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.billing', filter => '$tags[0] == "never"');
\echo :SQLSTATE
RESET ROLE;
SELECT consumer_group, owner::text FROM tx_message.consumer_groups
 WHERE consumer_group IN ('ps.filtered', 'ps.billing') ORDER BY 1;
SELECT consumer_group, tags, filter FROM tx_message.subscriptions WHERE topic = 'ps.orders' ORDER BY 1;

--------------------------------------------------------------------------
-- 7. Check-back dead letters: the copy goes out only while the role that
-- named the topic's dead-letter topic holds 'send' on it.  ps_creator owns
-- ps.ext and holds 'send' on ps.cdlq.
--------------------------------------------------------------------------
SELECT tx_create_topic('ps.cdlq');
SELECT tx_grant('ps.cdlq', 'ps_creator', 'send');
SET ROLE ps_creator;
SELECT tx_create_topic('ps.ext', check_after => '10 ms', check_interval => '10 ms', check_max => 1,
                       dead_letter_topic => 'ps.cdlq');
SELECT tx_send_half('ps.ext', '{"half": 1}') AS h1 \gset
RESET ROLE;
SELECT dead_letter_topic, dead_letter_owner::text FROM tx_message.topics WHERE topic = 'ps.ext';
CALL maintain_until(format('(SELECT count(*) = 1 FROM tx_message.dead_letters WHERE msg_id = %s)', :h1));
SELECT topic, payload, headers->'dead_letter'->>'topic' AS from_topic,
       headers->'dead_letter'->>'consumer_group' AS from_group,
       headers->'dead_letter'->>'reason' AS reason
  FROM tx_message.messages WHERE headers->'dead_letter'->>'msg_id' = :'h1';
-- after the revoke: no copy, and the owner of ps.ext cannot name it again
SELECT tx_revoke('ps.cdlq', 'ps_creator', 'send');
SET ROLE ps_creator;
SELECT tx_send_half('ps.ext', '{"half": 2}') AS h2 \gset
SELECT tx_alter_topic('ps.ext', dead_letter_topic => 'ps.cdlq');
\echo :SQLSTATE
SELECT tx_alter_topic('ps.ext', dead_letter_topic => 'ps.private');
\echo :SQLSTATE
-- a role it gives 'admin' on ps.ext gets nothing more on ps.cdlq either
SELECT tx_grant('ps.ext', 'ps_admin', 'admin');
RESET ROLE;
SET ROLE ps_admin;
SELECT tx_alter_topic('ps.ext', dead_letter_topic => 'ps.cdlq');
\echo :SQLSTATE
RESET ROLE;
CALL maintain_until(format('(SELECT count(*) = 1 FROM tx_message.dead_letters WHERE msg_id = %s)', :h2));
SELECT reason FROM tx_message.dead_letters WHERE msg_id = :h2;
SELECT copies_of(:h2) AS copies_h2;
SELECT dead_letter_topic, dead_letter_owner::text FROM tx_message.topics WHERE topic = 'ps.ext';
SELECT count(*) AS copies FROM tx_message.messages WHERE topic = 'ps.cdlq';

--------------------------------------------------------------------------
-- 8. Taking over a dead-letter topic's name: drop it, create it again as
--    the attacker, and wait for the victims' dead letters.  A dead-letter
--    topic is dropped only with cascade, which removes it from what names it.
--------------------------------------------------------------------------
GRANT EXECUTE ON FUNCTION tx_create_topic(text, interval, regprocedure, interval, interval, integer, boolean, text, text)
	TO ps_outsider;
SELECT tx_create_topic('ps.va');
SELECT tx_create_topic('ps.vdlq');
SELECT tx_create_topic('ps.vext', check_after => '10 ms', check_interval => '10 ms', check_max => 1,
                       dead_letter_topic => 'ps.vdlq');
SELECT tx_subscribe('ps.va', 'ps.vg', max_retries => 0, dead_letter_topic => 'ps.vdlq');
SELECT tx_drop_topic('ps.vdlq');
\echo :SQLSTATE
SELECT tx_drop_topic('ps.vdlq', cascade => true);
SELECT (SELECT count(*) FROM tx_message.subscriptions WHERE dead_letter_topic = 'ps.vdlq')
     + (SELECT count(*) FROM tx_message.topics WHERE dead_letter_topic = 'ps.vdlq') AS still_named;
SET ROLE ps_outsider;
SELECT tx_create_topic('ps.vdlq');
SELECT tx_grant('ps.vdlq', 'public', 'send');
SELECT tx_subscribe('ps.vdlq', 'ps.thief', start_from => 'earliest');
RESET ROLE;
SELECT tx_send('ps.va', '{"card": "4111-secret"}') AS vm \gset
SELECT tx_nack('ps.vg', msg_id, 'boom') FROM tx_receive('ps.vg', 1, wait => '5 s');
SELECT tx_send_half('ps.vext', '{"half": "secret"}') AS vh \gset
CALL maintain_until(format('(SELECT count(*) = 1 FROM tx_message.dead_letters WHERE msg_id = %s)', :vh));
SET ROLE ps_outsider;
SELECT count(*) AS stolen FROM tx_receive('ps.thief', 10, wait => '200 ms');
RESET ROLE;
SELECT copies_of(:vm) + copies_of(:vh) AS copies_anywhere;

--------------------------------------------------------------------------
-- 9. A filter that a chosen message makes fail: .datetime() compared
--    across time zones raises an error even in silent mode.  Refused when
--    the filter is named, so no sender can stop a group's receives.
--------------------------------------------------------------------------
SET ROLE ps_member;
SELECT tx_subscribe('ps.orders', 'ps.team_g', filter => '$.due.datetime() < "2030-01-01 00:00:00+00".datetime()');
\echo :SQLSTATE
SELECT tx_subscribe('ps.orders', 'ps.team_g', filter => 'exists($.x ? (@.datetime() > "2020-01-01".datetime()))');
\echo :SQLSTATE
RESET ROLE;
SELECT count(*) AS datetime_filters FROM tx_message.subscriptions WHERE filter::text LIKE '%datetime%';

\c contrib_regression
DROP DATABASE tx_message_parity_security;
DROP ROLE ps_nobody, ps_member, ps_team, ps_outsider, ps_admin, ps_sender, ps_creator, ps_sideadmin;
