// Message: look a message up by id (its trace per consumer group, and its
// life as a half message) or by topic and key (tx_find).  Both need
// 'receive' on the message's topic.
import { esc, jsonInline, link, number, page, table, time } from '../html.mjs';

export async function message(ctx) {
  const id = ctx.query.get('id') ?? '';
  const topic = ctx.query.get('topic') ?? '';
  const key = ctx.query.get('key') ?? '';
  const form = `<form method="get" action="/message" class="filter">
<label>Id <input name="id" value="${esc(id)}" size="22"></label> or
<label>topic <input name="topic" value="${esc(topic)}"></label>
<label>key <input name="key" value="${esc(key)}"></label>
<button type="submit">Look up</button></form>`;
  let body = form;
  if (/^-?\d{1,19}$/.test(id)) {
    const { rows } = await ctx.db.query(
      `SELECT consumer_group, state, attempts, lease_pid, lease_until, last_error, sent_at,
              deliverable_at, first_delivered_at, finished_at
         FROM tx_trace($1::bigint)`, [id]);
    body += `<h2>Trace of message ${esc(id)}</h2>` + table([
      ['consumer group', (r) => (r.consumer_group ? link('/group', { name: r.consumer_group }, r.consumer_group) : '(half message)')],
      ['state', (r) => `<span class="state">${esc(r.state)}</span>`],
      ['attempts', (r) => number(r.attempts)],
      ['leased by', (r) => esc(r.lease_pid ?? '')],
      ['lease until', (r) => esc(r.lease_until ? time(r.lease_until) : '')],
      ['last error', (r) => esc(r.last_error ?? '')],
      ['sent', (r) => esc(time(r.sent_at))],
      ['deliverable', (r) => esc(r.deliverable_at ? time(r.deliverable_at) : '')],
      ['first delivered', (r) => esc(r.first_delivered_at ? time(r.first_delivered_at) : '')],
      ['finished', (r) => esc(r.finished_at ? time(r.finished_at) : '')],
    ], rows, { id: 'trace', empty: 'No such message is stored.' });
  } else if (id !== '')
    body += '<p class="empty">A message id is a number.</p>';
  else if (topic !== '' && key !== '') {
    const { rows } = await ctx.db.query(
      `SELECT msg_id::text AS msg_id, state, sent_at, headers, payload
         FROM tx_find($1, $2, now() - interval '7 days', 50)`, [topic, key]);
    body += `<h2>Messages of topic ${esc(topic)} with key ${esc(key)}, newest first</h2>` + table([
      ['id', (r) => link('/message', { id: r.msg_id }, r.msg_id)],
      ['state', (r) => esc(r.state)],
      ['sent', (r) => esc(time(r.sent_at))],
      ['headers', (r) => jsonInline(r.headers)],
      ['payload', (r) => jsonInline(r.payload)],
    ], rows, { id: 'found', empty: 'No stored message of the last 7 days has that key.' });
  }
  return page({ ...ctx.layout, title: 'Message', body });
}
