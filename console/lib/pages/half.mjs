// Half messages: those still waiting for a decision, with their check-backs
// so far (tx_trace, tx_message.half_check_history), and commit or roll back
// by hand, confirmed first.
// tx_commit_half and tx_rollback_half need 'send' on the topic.
import { csrfField, esc, jsonInline, link, number, page, table, time } from '../html.mjs';

export async function half(ctx) {
  const { rows } = await ctx.db.query(
    `SELECT m.msg_id::text AS msg_id, m.topic, m.key, m.payload, m.sent_at,
            t.attempts, t.last_error, t.deliverable_at
       FROM tx_message.messages m
       LEFT JOIN LATERAL (SELECT * FROM tx_trace(m.msg_id) WHERE consumer_group IS NULL) t ON true
      WHERE m.state = 'half' ORDER BY m.msg_id LIMIT 200`);
  const history = new Map();
  if (rows.length > 0) {
    const h = await ctx.db.query(
      `SELECT msg_id::text AS msg_id, checked_at, answer, detail FROM tx_message.half_check_history
        WHERE msg_id = ANY ($1::bigint[]) ORDER BY msg_id, checked_at`, [rows.map((r) => r.msg_id)]);
    for (const c of h.rows) {
      if (!history.has(c.msg_id))
        history.set(c.msg_id, []);
      history.get(c.msg_id).push(c);
    }
  }
  const checks = (r) => (history.get(r.msg_id) ?? [])
    .map((c) => `${esc(time(c.checked_at))}: ${esc(c.answer)}${c.detail ? ` (${esc(c.detail)})` : ''}`).join('<br>');
  const list = table([
    ['id', (r) => link('/message', { id: r.msg_id }, r.msg_id)],
    ['topic', (r) => link('/topic', { name: r.topic }, r.topic)],
    ['key', (r) => esc(r.key ?? '')],
    ['sent', (r) => esc(time(r.sent_at))],
    ['check-backs', (r) => number(r.attempts ?? 0)],
    ['history', (r) => checks(r) || esc(r.last_error ?? '')],
    ['payload', (r) => jsonInline(r.payload)],
    ['decide', (r) => `<form method="post" action="/half/confirm" class="inline">${csrfField(ctx.session.csrf)}
<input type="hidden" name="id" value="${esc(r.msg_id)}">
<button type="submit" name="action" value="commit">Commit…</button>
<button type="submit" name="action" value="rollback" class="danger">Roll back…</button></form>`],
  ], rows, { id: 'half', empty: 'No half message waits (of the topics you may receive from).' });
  return page({ ...ctx.layout, title: 'Half messages', refresh: 10, body: list });
}

export function halfConfirmPage(ctx, action, id) {
  if (!['commit', 'rollback'].includes(action) || !/^-?\d{1,19}$/.test(id ?? ''))
    return page({ ...ctx.layout, title: 'Half messages', body: '<p class="empty">Choose a half message and an action first.</p>' });
  const what = action === 'commit'
    ? 'It becomes deliverable to every subscribed group, as if the producer had called tx_commit_half.'
    : 'It is discarded, as if the producer had called tx_rollback_half.';
  return page({
    ...ctx.layout, title: `${action === 'commit' ? 'Commit' : 'Roll back'} half message ${id}?`,
    body: `<p>${esc(what)}</p>
<form method="post" action="/half/do">${csrfField(ctx.session.csrf)}
<input type="hidden" name="id" value="${esc(id)}"><input type="hidden" name="action" value="${esc(action)}">
<button type="submit" id="confirm">${action === 'commit' ? 'Commit' : 'Roll back'}</button> <a href="/half">Cancel</a></form>`,
  });
}

export async function halfAction(ctx, action, id) {
  if (!['commit', 'rollback'].includes(action) || !/^-?\d{1,19}$/.test(id ?? ''))
    return 'Choose a half message and an action first.';
  const fn = action === 'commit' ? 'tx_commit_half' : 'tx_rollback_half';
  const { rows } = await ctx.db.query(`SELECT ${fn}($1::bigint) AS done`, [id]);
  return rows[0].done
    ? `Half message ${id}: ${action === 'commit' ? 'committed' : 'rolled back'}.`
    : `Half message ${id} already was ${action === 'commit' ? 'committed' : 'rolled back'}.`;
}
