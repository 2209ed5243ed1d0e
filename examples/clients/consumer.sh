#!/usr/bin/env bash
# A tx_message consumer in shell with psql.
#
#   PGHOST=... PGDATABASE=... bash consumer.sh GROUP
#
# Each batch is one statement, so one transaction: it receives (waiting up
# to 2 s for messages, without polling), records the effects, acks them and
# nacks the messages whose processing fails, all committed together.  It
# stops cleanly on SIGTERM or SIGINT, after the batch under way.
#
# The work here records each message in client_effects, and fails messages
# whose payload says {"fail": true}.
set -u
GROUP=${1:-workers}
stopping=0
trap 'stopping=1' TERM INT

while [ $stopping = 0 ]; do
	# psql runs in the background and is waited for, so that a signal ends
	# the wait at once; the batch still commits, and the loop then ends
	psql -X -q -At -v ON_ERROR_STOP=1 -v group="$GROUP" >/dev/null <<'SQL' &
WITH r AS (SELECT msg_id, payload FROM tx_receive(:'group', 100, wait => '2 s')),
failed AS (SELECT tx_nack(:'group', msg_id, 'the payload says fail') FROM r
            WHERE coalesce((payload->>'fail')::boolean, false)),
done AS (INSERT INTO client_effects (client, msg_id, payload)
         SELECT 'shell', msg_id, payload FROM r
          WHERE NOT coalesce((payload->>'fail')::boolean, false)
         RETURNING msg_id)
SELECT (SELECT count(*) FROM failed),
       tx_ack(:'group', coalesce((SELECT array_agg(msg_id) FROM done), '{}'));
SQL
	pid=$!
	while ! wait $pid; do
		# wait returns early when a signal arrives; psql goes on
		kill -0 $pid 2>/dev/null || { echo "consumer.sh: psql failed" >&2; exit 1; }
	done
done
echo "consumer.sh: stopped"
