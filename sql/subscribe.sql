-- Subscriptions (consumer groups): create, update, drop, validation.
\set VERBOSITY terse
SELECT tx_create_topic('shop.orders');
SELECT tx_create_topic('shop.refunds');

SELECT tx_subscribe('shop.orders', 'billing');
SELECT topic, consumer_group, tags, handler, max_retries, backoff, lease, ordered,
       start_from, owner::text
  FROM tx_message.subscriptions ORDER BY topic, consumer_group;

-- a group may subscribe to several topics; calling again updates the options
SELECT tx_subscribe('shop.refunds', 'billing', tags => '{eu,us}', max_retries => 3,
                    backoff => '{1 s,5 s}', lease => '1 min', ordered => true);
SELECT tx_subscribe('shop.orders', 'billing', max_retries => 5, handler_executors => 3);
SELECT topic, consumer_group, tags, max_retries, backoff, lease, ordered, handler_executors,
       altered_at IS NOT NULL AS altered
  FROM tx_message.subscriptions ORDER BY topic, consumer_group;
-- calling again without it sets it back to 1, as any option left out
SELECT tx_subscribe('shop.orders', 'billing', max_retries => 5);
SELECT handler_executors FROM tx_message.subscriptions
 WHERE topic = 'shop.orders' AND consumer_group = 'billing';

-- bad input: a clear error, nothing written
SELECT count(*) AS subscriptions FROM tx_message.subscriptions \gset
SELECT tx_subscribe('nope', 'billing');
\echo :SQLSTATE
SELECT tx_subscribe('shop.orders', 'bad group!');
\echo :SQLSTATE
SELECT tx_subscribe('shop.orders', repeat('g', 128));
SELECT tx_subscribe(NULL, 'billing');
\echo :SQLSTATE
SELECT tx_subscribe('shop.orders', NULL);
SELECT tx_subscribe('shop.orders', 'g2', tags => '{}');
\echo :SQLSTATE
SELECT tx_subscribe('shop.orders', 'g2', tags => '{a,NULL}');
SELECT tx_subscribe('shop.orders', 'g2', max_retries => -1);
\echo :SQLSTATE
SELECT tx_subscribe('shop.orders', 'g2', max_retries => NULL);
SELECT tx_subscribe('shop.orders', 'g2', backoff => '{}');
SELECT tx_subscribe('shop.orders', 'g2', backoff => '{1 s,-1 s}');
SELECT tx_subscribe('shop.orders', 'g2', backoff => '{1 s,NULL}');
SELECT tx_subscribe('shop.orders', 'g2', backoff => NULL);
SELECT tx_subscribe('shop.orders', 'g2', lease => '0 s');
SELECT tx_subscribe('shop.orders', 'g2', lease => '-5 s');
SELECT tx_subscribe('shop.orders', 'g2', ordered => NULL);
SELECT tx_subscribe('shop.orders', 'g2', start_from => 'yesterday');
\echo :SQLSTATE
SELECT tx_subscribe('shop.orders', 'g2', handler => 'now()');
\echo :SQLSTATE
SELECT tx_subscribe('shop.orders', 'g2', handler_executors => 0);
\echo :SQLSTATE
SELECT tx_subscribe('shop.orders', 'g2', handler_executors => 9);
SELECT tx_subscribe('shop.orders', 'g2', handler_executors => NULL);
\echo :SQLSTATE
SELECT count(*) - :subscriptions AS written FROM tx_message.subscriptions;

-- a topic with subscriptions is only dropped with cascade
\set VERBOSITY default
SELECT tx_drop_topic('shop.refunds');
\set VERBOSITY terse
\echo :SQLSTATE
SELECT tx_unsubscribe('shop.refunds', 'billing');
SELECT tx_unsubscribe('shop.refunds', 'billing');
\echo :SQLSTATE
SELECT tx_unsubscribe('shop.refunds', NULL);
SELECT tx_drop_topic('shop.refunds');
SELECT tx_create_topic('shop.refunds');
SELECT tx_subscribe('shop.refunds', 'billing');
SELECT tx_drop_topic('shop.refunds', "cascade" => true);
SELECT topic, consumer_group FROM tx_message.subscriptions ORDER BY 1, 2;

-- subscribing needs 'receive' on the topic; a consumer group belongs to
-- the role that created it, and only its members change its subscriptions
CREATE ROLE txm_consumer;
SET ROLE txm_consumer;
SELECT tx_subscribe('shop.orders', 'analytics');
\echo :SQLSTATE
RESET ROLE;
SELECT tx_grant('shop.orders', 'txm_consumer', 'receive');
SET ROLE txm_consumer;
SELECT tx_subscribe('shop.orders', 'billing', max_retries => 1);
\echo :SQLSTATE
SELECT tx_unsubscribe('shop.orders', 'billing');
SELECT tx_subscribe('shop.orders', 'analytics');
SELECT owner::text FROM tx_message.subscriptions WHERE consumer_group = 'analytics';
SELECT owner::text FROM tx_message.consumer_groups WHERE consumer_group = 'analytics';
RESET ROLE;
SELECT tx_revoke('shop.orders', 'txm_consumer', 'all');
-- a role with 'admin' on the topic may end another role's subscription to
-- it, which removes the group with its last subscription; 'receive' is not
-- enough
CREATE ROLE txm_topic_admin;
SELECT tx_grant('shop.orders', 'txm_topic_admin', 'receive');
SET ROLE txm_topic_admin;
SELECT tx_unsubscribe('shop.orders', 'analytics');
\echo :SQLSTATE
RESET ROLE;
SELECT tx_grant('shop.orders', 'txm_topic_admin', 'admin');
SET ROLE txm_topic_admin;
SELECT tx_unsubscribe('shop.orders', 'analytics');
RESET ROLE;
SELECT count(*) AS analytics_left FROM tx_message.consumer_groups WHERE consumer_group = 'analytics';
SELECT tx_revoke('shop.orders', 'txm_topic_admin', 'all');
DROP ROLE txm_consumer, txm_topic_admin;

-- receiving needs a subscription
SELECT * FROM tx_receive('nobody');
\echo :SQLSTATE
\set VERBOSITY default
SELECT * FROM tx_receive('nobody');
\set VERBOSITY terse
SELECT tx_ack('nobody', 1);
SELECT tx_unsubscribe('shop.orders', 'billing');
