// Topic: its settings, its subscriptions, its recent messages (paged, only
// with 'receive'; tx_recent, newest first in commit order; half messages
// are on their own page), and its send and ack rates over the last hour.
import { chart, esc, href, interval, jsonInline, link, number, page, table, time } from '../html.mjs';

const PAGE = 20;

export async function topic(ctx) {
  const name = ctx.query.get('name') ?? '';
  const skip = /^\d{1,12}$/.test(ctx.query.get('skip') ?? '') ? Number(ctx.query.get('skip')) : 0;
  const t = await ctx.db.query('SELECT * FROM tx_message.topics WHERE topic = $1', [name]);
  if (t.rows.length === 0)
    return page({ ...ctx.layout, title: `Topic ${name}`, body: '<p class="empty">No such topic, or you may not monitor it.</p>' });
  const row = t.rows[0];
  const settings = table([
    ['retention', () => interval(row.retention)],
    ['check function', () => esc(row.check_function ?? 'none (NOTIFY)')],
    ['check after', () => interval(row.check_after)],
    ['check interval', () => interval(row.check_interval)],
    ['check max', () => number(row.check_max)],
    ['dead-letter topic', () => (row.dead_letter_topic ? link('/topic', { name: row.dead_letter_topic }, row.dead_letter_topic) : 'none')],
    ['notify channel', () => esc(row.notify_channel ?? 'none')],
    ['owner', () => esc(row.owner)],
  ], [row]);

  const subs = await ctx.db.query(
    `SELECT consumer_group, tags, handler, handler_executors, max_retries, lease, ordered, dead_letter_topic,
            filter::text AS filter
       FROM tx_message.subscriptions WHERE topic = $1 ORDER BY consumer_group`, [name]);
  const subTable = table([
    ['consumer group', (r) => link('/group', { name: r.consumer_group }, r.consumer_group)],
    ['tags', (r) => esc(r.tags ? r.tags.join(', ') : 'all')],
    ['filter', (r) => esc(r.filter ?? '')],
    ['handler', (r) => esc(!r.handler ? ''
      : r.handler_executors > 1 ? `${r.handler}, in up to ${r.handler_executors} executors` : r.handler)],
    ['max retries', (r) => number(r.max_retries)],
    ['lease', (r) => interval(r.lease)],
    ['ordered', (r) => (r.ordered ? 'yes' : 'no')],
    ['dead-letter topic', (r) => esc(r.dead_letter_topic ?? '')],
  ], subs.rows, { empty: 'No subscription.' });

  // recent messages: the view shows them only to roles with 'receive'
  let messages;
  const may = await ctx.db.query("SELECT tx_message._may($1, 'receive') AS may", [name]);
  if (!may.rows[0].may)
    messages = '<p class="empty">You may not receive from this topic: its messages are not shown.</p>';
  else {
    // the stream's newest positions: a few index probes however long the backlog
    const m = await ctx.db.query(
      `SELECT msg_id::text AS msg_id, key, tags, headers, payload, state, sent_at
         FROM tx_recent($1, ${PAGE}, $2)`, [name, skip]);
    messages = table([
      ['id', (r) => link('/message', { id: r.msg_id }, r.msg_id)],
      ['state', (r) => esc(r.state)],
      ['key', (r) => esc(r.key ?? '')],
      ['sent', (r) => esc(time(r.sent_at))],
      ['headers', (r) => jsonInline(r.headers)],
      ['payload', (r) => jsonInline(r.payload)],
    ], m.rows, { id: 'messages', empty: 'No stored message.' });
    const pager = [];
    if (skip > 0)
      pager.push(`<a href="${esc(href('/topic', { name, skip: Math.max(0, skip - PAGE) }))}">Newer messages</a>`);
    if (m.rows.length === PAGE)
      pager.push(`<a href="${esc(href('/topic', { name, skip: skip + PAGE }))}">Older messages</a>`);
    messages += `<p>${pager.join(' · ')}</p>`;
  }

  const s = ctx.session.sampler;
  const acks = subs.rows.map((r) => ({ label: `acked/s ${r.consumer_group}`, points: s.rates(name, r.consumer_group, 'acked_total') }));
  const rates = chart('Messages per second, last hour', [{ label: 'sent/s', points: s.rates(name, null, 'sent_total') }, ...acks.slice(0, 3)]);

  return page({
    ...ctx.layout, title: `Topic ${name}`,
    body: `${settings}\n${rates}\n<h2>Subscriptions</h2>\n${subTable}\n<h2>Recent messages</h2>\n${messages}`,
  });
}
