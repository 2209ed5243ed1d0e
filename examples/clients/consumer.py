#!/usr/bin/env python3
"""A tx_message consumer in Python with psycopg 3 (Debian: python3-psycopg).

    PGHOST=... PGDATABASE=... python3 consumer.py GROUP

Each batch is received, processed and acknowledged in ONE transaction, so
the effects and the ack commit together (exactly once in this database).
A message whose processing fails is nacked in that transaction (its retry
follows the subscription's backoff).  It waits for messages without
polling (tx_receive(wait => ...)) and stops cleanly on SIGTERM or SIGINT:
the batch under way is finished and committed first.

The work here records each message in client_effects, and fails messages
whose payload says {"fail": true}.
"""
import signal
import sys

import psycopg

GROUP = sys.argv[1] if len(sys.argv) > 1 else "workers"
stopping = False


def stop(signum, frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)


def handle(cur, msg_id, payload):
    """Your work, in the transaction of the ack."""
    if payload.get("fail"):
        raise ValueError("the payload says fail")
    cur.execute("INSERT INTO client_effects (client, msg_id, payload) VALUES ('python', %s, %s)",
                (msg_id, psycopg.types.json.Jsonb(payload)))


with psycopg.connect() as conn:
    while not stopping:
        with conn.transaction():
            cur = conn.cursor()
            # msg_id is a bigint: Python ints hold it exactly
            cur.execute("SELECT msg_id, payload FROM tx_receive(%s, 100, wait => '2 s')", (GROUP,))
            rows = cur.fetchall()
            for msg_id, payload in rows:
                try:
                    with conn.transaction():  # a savepoint: a failure undoes this message only
                        handle(conn.cursor(), msg_id, payload)
                except Exception as err:  # noqa: BLE001 - any failure is a nack
                    cur.execute("SELECT tx_nack(%s, %s, %s)", (GROUP, msg_id, str(err)))
            if rows:
                # every message this transaction received and did not nack
                cur.execute("SELECT tx_ack(%s)", (GROUP,))
print("consumer.py: stopped", flush=True)
