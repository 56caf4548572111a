'use strict';
// Transactional enqueue from Node.js with the `pg` client (docs/postgres.md):
// an application writes its own row and the job that follows from it in ONE
// transaction. If anything fails before COMMIT, both are gone; workers see
// the job only once the transaction has committed.
//
//   DATABASE_URL=postgres://app@db/jobs node examples/postgres/enqueue.js 42 ada@example.com
//
// DATABASE_URL is the database spoold runs on (its --store URL).

const { Client } = require('pg');

async function placeOrder(client, id, email) {
  await client.query('BEGIN');
  try {
    await client.query('INSERT INTO orders (id, email) VALUES ($1, $2)', [id, email]);
    const job = { jobtype: 'SendReceipt', args: [id], queue: 'mail', retry: 5 };
    const { rows } = await client.query('SELECT spool.push($1::jsonb) AS jid', [JSON.stringify(job)]);
    await client.query('COMMIT');
    return rows[0].jid;
  } catch (err) {
    await client.query('ROLLBACK'); // the order and its job vanish together
    throw err;
  }
}

async function main() {
  const [id, email] = process.argv.slice(2);
  if (!process.env.DATABASE_URL || !id || !email) {
    console.error('usage: DATABASE_URL=postgres://... node enqueue.js ORDER_ID EMAIL');
    process.exit(2);
  }
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  try {
    await client.query('CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, email text NOT NULL)');
    const jid = await placeOrder(client, Number(id), email);
    console.log(`order ${id} stored, receipt job ${jid} enqueued`);
  } finally {
    await client.end();
  }
}

main().catch((err) => {
  console.error(`enqueue failed: ${err.message}`);
  process.exit(1);
});
