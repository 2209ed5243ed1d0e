-- Filters on headers: a jsonpath predicate on the headers, with $key and
-- $tags; messages that do not match are finished for the group without
-- being delivered, as tag filters do.
\set VERBOSITY terse
SELECT tx_create_topic('fi.orders');
SELECT tx_subscribe('fi.orders', 'fi.eu_big', filter => '$.region == "eu" && $.amount > 100');
SELECT tx_subscribe('fi.orders', 'fi.vip', filter => '$key starts with "vip-"');
SELECT tx_subscribe('fi.orders', 'fi.tagged', tags => '{paid}', filter => '$tags[*] == "urgent"');
SELECT tx_subscribe('fi.orders', 'fi.no_headers', filter => '!exists($.region)');
SELECT tx_subscribe('fi.orders', 'fi.strict', filter => 'strict $.amount > 100');
SELECT tx_subscribe('fi.orders', 'fi.all');
SELECT consumer_group, filter FROM tx_message.subscriptions WHERE topic = 'fi.orders' ORDER BY 1;

SELECT tx_send('fi.orders', '{"n": 1}', headers => '{"region": "eu", "amount": 150}') > 0 AS sent;
SELECT tx_send('fi.orders', '{"n": 2}', headers => '{"region": "eu", "amount": 50}') > 0 AS sent;
SELECT tx_send('fi.orders', '{"n": 3}', headers => '{"region": "us", "amount": 500}', key => 'vip-7') > 0 AS sent;
SELECT tx_send('fi.orders', '{"n": 4}', key => 'vip-8', tags => '{paid,urgent}') > 0 AS sent;
SELECT tx_send('fi.orders', '{"n": 5}', tags => '{urgent}') > 0 AS sent;
SELECT tx_send('fi.orders', '{"n": 6}', headers => '{"amount": "lots"}') > 0 AS sent;
SELECT tx_send('fi.orders', '{"n": 7}', headers => '{"region": "eu", "amount": 101.5}', tags => '{paid}') > 0 AS sent;

SELECT g AS consumer_group,
       (SELECT array_agg(payload->>'n' ORDER BY msg_id) FROM tx_receive(g, wait => '5 s')) AS delivered
  FROM unnest('{fi.all,fi.eu_big,fi.vip,fi.tagged,fi.no_headers,fi.strict}'::text[]) g;

-- the messages filtered out are finished for the group: nothing left, nothing pending
SELECT g AS consumer_group, count(r.msg_id) AS left_over
  FROM unnest('{fi.eu_big,fi.vip,fi.tagged,fi.no_headers,fi.strict}'::text[]) g
  LEFT JOIN LATERAL tx_receive(g) r ON true GROUP BY g ORDER BY g;

-- changing the filter applies to what comes next
SELECT tx_subscribe('fi.orders', 'fi.vip', filter => '$key == "vip-9"');
SELECT tx_send('fi.orders', '{"n": 8}', key => 'vip-8') > 0 AS sent;
SELECT tx_send('fi.orders', '{"n": 9}', key => 'vip-9') > 0 AS sent;
SELECT array_agg(payload->>'n' ORDER BY msg_id) AS vip FROM tx_receive('fi.vip', wait => '5 s');

-- only predicates, and only $key and $tags
SELECT tx_subscribe('fi.orders', 'fi.bad', filter => '$.region');
\echo :SQLSTATE
SELECT tx_subscribe('fi.orders', 'fi.bad', filter => '$.amount > $limit');
\echo :SQLSTATE
SELECT tx_subscribe('fi.orders', 'fi.bad', filter => '$.a == 1 || ($.b like_regex "x" && $.c[$i] == 2)');
\echo :SQLSTATE
SELECT tx_subscribe('fi.orders', 'fi.bad', filter => '$.due.datetime() < "2030-01-01".datetime()');
\echo :SQLSTATE
SELECT tx_subscribe('fi.orders', 'fi.bad', filter => 'not a path');
\echo :SQLSTATE
SELECT count(*) AS not_subscribed FROM tx_message.subscriptions WHERE consumer_group = 'fi.bad';

SELECT tx_drop_topic('fi.orders', cascade => true);
