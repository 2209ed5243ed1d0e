// Overview: every topic the role may monitor, with its send rate, half and
// delayed messages, and each consumer group's backlog, age of the oldest
// unfinished message and dead letters; the database's worker and
// executors.  Reloads itself every 5 seconds.
import { esc, interval, link, number, page, table } from '../html.mjs';

export async function overview(ctx) {
  const { rows } = await ctx.db.query('SELECT * FROM tx_stats()');
  // check-back dead letters belong to no group (those of topics the role may receive from)
  const half = await ctx.db.query(
    'SELECT topic, count(*) AS n FROM tx_message.dead_letters WHERE consumer_group IS NULL GROUP BY topic');
  const halfDead = new Map(half.rows.map((r) => [r.topic, Number(r.n)]));
  const topics = rows.filter((r) => r.consumer_group === null);
  const groups = rows.filter((r) => r.consumer_group !== null);
  const s = ctx.session.sampler;

  const topicTable = table([
    ['topic', (r) => link('/topic', { name: r.topic }, r.topic)],
    ['sent/s', (r) => number(s.lastRate(r.topic, null, 'sent_total'), 1)],
    ['sent', (r) => number(r.sent_total)],
    ['half pending', (r) => `<span data-half="${esc(r.topic)}">${number(r.half_pending)}</span>`],
    ['oldest half', (r) => interval(r.oldest_half_age)],
    ['delayed', (r) => number(r.delayed_pending)],
    ['dead letters', (r) => number(groups.filter((g) => g.topic === r.topic)
      .reduce((a, g) => a + Number(g.dead_letters), halfDead.get(r.topic) ?? 0))],
  ], topics, { id: 'topics', empty: 'No topic you may monitor.' });

  const groupTable = table([
    ['topic', (r) => link('/topic', { name: r.topic }, r.topic)],
    ['consumer group', (r) => link('/group', { name: r.consumer_group }, r.consumer_group)],
    ['backlog', (r) => `<span class="backlog" data-topic="${esc(r.topic)}" data-group="${esc(r.consumer_group)}">${esc(r.backlog)}</span>`],
    ['in flight', (r) => number(r.in_flight)],
    ['retrying', (r) => number(r.retrying)],
    ['dead letters', (r) => (Number(r.dead_letters) > 0
      ? link('/dead-letters', { topic: r.topic, group: r.consumer_group }, number(r.dead_letters))
      : '0')],
    ['oldest unfinished', (r) => interval(r.oldest_unfinished_age)],
    ['acked/s', (r) => number(s.lastRate(r.topic, r.consumer_group, 'acked_total'), 1)],
  ], groups, { id: 'groups', empty: 'No subscription you may monitor.' });

  let workers;
  try {
    const w = await ctx.db.query(
      `SELECT pid, started_at, last_cycle_at, delivered, checks, dead_lettered, errors, handled,
              stale_prepared, executor_pids, restore_state
         FROM tx_worker_status() WHERE database = current_database()`);
    workers = table([
      // NULL: the worker left for want of work, and comes back when there is some
      ['pid', (r) => esc(r.pid ?? 'none (idle)')],
      ['last cycle', (r) => esc(r.last_cycle_at?.toISOString?.() ?? '–')],
      ['delivered', (r) => number(r.delivered)],
      ['check-backs', (r) => number(r.checks)],
      ['dead-lettered', (r) => number(r.dead_lettered)],
      ['handled', (r) => number(r.handled)],
      ['errors', (r) => number(r.errors)],
      ['stale prepared', (r) => number(r.stale_prepared)],
      ['executors', (r) => esc((r.executor_pids ?? []).join(', ') || 'none')],
      ['restore', (r) => esc(r.restore_state ?? '')],
    ], w.rows, { id: 'workers', empty: 'No worker serves this database (is tx_message in shared_preload_libraries?).' });
  } catch (e) {
    workers = `<p class="empty">${esc(e.code === '42501'
      ? 'The worker status needs pg_monitor (or EXECUTE on tx_worker_status()).'
      : e.message)}</p>`;
  }

  return page({
    ...ctx.layout, title: 'Overview', refresh: 5,
    body: `<h2>Topics</h2>\n${topicTable}\n<h2>Consumer groups</h2>\n${groupTable}\n<h2>Worker</h2>\n${workers}`,
  });
}
