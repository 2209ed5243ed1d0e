// A tx_message consumer in Node.js with node-postgres (npm install pg).
//
//   PGHOST=... PGDATABASE=... node examples/consumer.mjs [group] [max]
//
// Each batch is received, processed and acknowledged in ONE transaction:
// the consumer's own writes and the ack commit together (exactly-once
// effects in this database).  A message that fails is nacked in a fresh
// transaction, which schedules its retry with the subscription's backoff.
import pg from 'pg';

const group = process.argv[2] ?? 'points-service';
const stopAfter = Number(process.argv[3] ?? Infinity);
const client = new pg.Client();
await client.connect();

async function handle(msg, db) {
  // your work, in the same transaction as the ack
  await db.query('INSERT INTO points_ledger (msg_id, customer, points) VALUES ($1, $2, $3)',
                 [msg.msg_id, msg.payload.customer, msg.payload.amount]);
}

let handled = 0;
while (handled < stopAfter) {
  await client.query('BEGIN');
  // waits up to 10 s for messages, without polling
  const { rows } = await client.query(
    "SELECT msg_id, key, payload, attempt FROM tx_receive($1, 100, wait => '10 s')", [group]);
  const done = [];
  const failed = [];
  for (const msg of rows) {
    await client.query('SAVEPOINT one');
    try {
      await handle(msg, client);
      await client.query('RELEASE SAVEPOINT one');
      done.push(msg.msg_id);
    } catch (err) {
      await client.query('ROLLBACK TO SAVEPOINT one');
      failed.push([msg.msg_id, err.message]);
    }
  }
  await client.query('SELECT tx_ack($1, $2::bigint[])', [group, done]);
  for (const [id, error] of failed)
    await client.query('SELECT tx_nack($1, $2, $3)', [group, id, error]);
  await client.query('COMMIT');
  handled += rows.length;
  if (rows.length > 0)
    console.log(`handled ${done.length}, failed ${failed.length}`);
}
await client.end();
