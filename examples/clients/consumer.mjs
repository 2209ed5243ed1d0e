// A tx_message consumer in Node.js with node-postgres (npm install pg).
//
//   PGHOST=... PGDATABASE=... node consumer.mjs GROUP
//
// Each batch is received, processed and acknowledged in ONE transaction,
// so the effects and the ack commit together (exactly once in this
// database); a message whose processing fails is nacked in it (its retry
// follows the subscription's backoff).  It waits for messages without
// polling and stops cleanly on SIGTERM or SIGINT, after the batch under way.
//
// Message ids are bigints, and exceed 2^53 once a cluster has used 2^33
// transaction ids: never turn them into JavaScript numbers.  node-postgres
// returns int8 columns as strings, which is safe (keep them strings, or use
// BigInt); do not install a type parser that makes them numbers.
//
// The work here records each message in client_effects, and fails messages
// whose payload says {"fail": true}.
import pg from 'pg';

const group = process.argv[2] ?? 'workers';
let stopping = false;
process.on('SIGTERM', () => { stopping = true; });
process.on('SIGINT', () => { stopping = true; });

const client = new pg.Client();
await client.connect();

async function handle(msg, db) {
  // your work, in the transaction of the ack
  if (msg.payload.fail)
    throw new Error('the payload says fail');
  await db.query("INSERT INTO client_effects (client, msg_id, payload) VALUES ('node', $1, $2)",
                 [msg.msg_id, msg.payload]);
}

while (!stopping) {
  await client.query('BEGIN');
  const { rows } = await client.query(
    "SELECT msg_id, payload FROM tx_receive($1, 100, wait => '2 s')", [group]);
  for (const msg of rows) {
    if (typeof msg.msg_id !== 'string')
      throw new Error('message ids must stay strings (or BigInt)');
    await client.query('SAVEPOINT one');
    try {
      await handle(msg, client);
      await client.query('RELEASE SAVEPOINT one');
    } catch (err) {
      await client.query('ROLLBACK TO SAVEPOINT one');
      await client.query('SELECT tx_nack($1, $2, $3)', [group, msg.msg_id, err.message]);
    }
  }
  // every message this transaction received and did not nack
  if (rows.length > 0)
    await client.query('SELECT tx_ack($1)', [group]);
  await client.query('COMMIT');
}
await client.end();
console.log('consumer.mjs: stopped');
