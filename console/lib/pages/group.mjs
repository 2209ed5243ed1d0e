// Consumer group: per topic, its backlog, in flight, retrying and dead
// letters, its lag over the last hour, the messages waiting for a retry;
// and the seek action (tx_seek), which needs the group's privileges.
import { chart, csrfField, esc, interval, link, number, page, table, time } from '../html.mjs';

export async function group(ctx) {
  const name = ctx.query.get('name') ?? '';
  const { rows } = await ctx.db.query(
    'SELECT * FROM tx_message.stats WHERE consumer_group = $1 ORDER BY topic', [name]);
  if (rows.length === 0)
    return page({ ...ctx.layout, title: `Consumer group ${name}`, body: '<p class="empty">No such group, or you may not monitor its topics.</p>' });
  const stats = table([
    ['topic', (r) => link('/topic', { name: r.topic }, r.topic)],
    ['backlog', (r) => `<span class="backlog" data-topic="${esc(r.topic)}" data-group="${esc(name)}">${esc(r.backlog)}</span>`],
    ['in flight', (r) => number(r.in_flight)],
    ['retrying', (r) => number(r.retrying)],
    ['dead letters', (r) => (Number(r.dead_letters) > 0
      ? link('/dead-letters', { topic: r.topic, group: name }, number(r.dead_letters)) : '0')],
    ['oldest unfinished', (r) => interval(r.oldest_unfinished_age)],
    ['delivered', (r) => number(r.delivered_total)],
    ['acked', (r) => number(r.acked_total)],
    ['nacked', (r) => number(r.nacked_total)],
  ], rows);

  const s = ctx.session.sampler;
  const lag = chart('Backlog, last hour', rows.slice(0, 4).map((r) => ({ label: r.topic, points: s.series(r.topic, name, 'backlog') })));

  const retries = await ctx.db.query(
    `SELECT r.msg_id::text AS msg_id, s.topic, r.attempt, r.state, r.due_at, r.last_error
       FROM tx_message.retries r JOIN tx_message.subscriptions s USING (sub_id)
      WHERE s.consumer_group = $1 ORDER BY r.due_at LIMIT 100`, [name]);
  const retryTable = table([
    ['id', (r) => link('/message', { id: r.msg_id }, r.msg_id)],
    ['topic', (r) => esc(r.topic)],
    ['attempts', (r) => number(r.attempt)],
    ['state', (r) => esc(r.state)],
    ['next attempt (or lease end)', (r) => esc(time(r.due_at))],
    ['last error', (r) => esc(r.last_error ?? '')],
  ], retries.rows, { empty: 'Nothing waits for a retry (of the topics you may receive from).' });

  const options = rows.map((r) => `<option value="${esc(r.topic)}">${esc(r.topic)}</option>`).join('');
  const seek = `<form method="post" action="/seek" class="action">${csrfField(ctx.session.csrf)}
<input type="hidden" name="group" value="${esc(name)}">
<label>Topic <select name="topic">${options}</select></label>
<label>Target <input name="target" value="latest" size="28" title="earliest, latest, or a time such as 2026-11-27 10:00+00"></label>
<button type="submit" name="confirm" value="">Seek…</button></form>
<p class="hint">Moves the group's position (tx_seek): messages from the target on come again, those before it count as finished.</p>`;

  return page({
    ...ctx.layout, title: `Consumer group ${name}`,
    body: `${stats}\n${lag}\n<h2>Waiting for a retry</h2>\n${retryTable}\n<h2>Seek</h2>\n${seek}`,
  });
}
