// Dead letters: the list (filtered by topic, group and reason), one dead
// letter with its payload and last error, and the redrive and purge
// actions, in bulk and one by one, each confirmed on a page of its own.
// The view shows a role the dead letters of the topics it may receive
// from; the actions need the group's privileges (or 'admin' for check-back
// dead letters), which the functions check.
import { csrfField, esc, href, json, link, number, page, table, time } from '../html.mjs';

const LIST = 500;

// The filter fields of the list, carried through the confirmation and back.
function filterFields(topic, group, reason) {
  return ['topic', 'group', 'reason'].map((k, i) => [k, [topic, group, reason][i]])
    .filter(([, v]) => v)
    .map(([k, v]) => `<input type="hidden" name="back_${k}" value="${esc(v)}">`).join('');
}

// Where an action goes back to: the list with the filter it was chosen under.
export function backTo(form) {
  return href('/dead-letters', {
    topic: form.get('back_topic'), group: form.get('back_group'), reason: form.get('back_reason'),
  });
}

export async function deadLetters(ctx) {
  const topic = ctx.query.get('topic') || null;
  const group = ctx.query.get('group') || null;
  const reason = ctx.query.get('reason') || null;
  const { rows } = await ctx.db.query(
    `SELECT msg_id::text AS msg_id, topic, consumer_group, key, attempts, reason, last_error, dead_at
       FROM tx_message.dead_letters
      WHERE ($1::text IS NULL OR topic = $1) AND ($2::text IS NULL OR consumer_group = $2)
        AND ($3::text IS NULL OR reason = $3)
      ORDER BY dead_at DESC, msg_id LIMIT ${LIST}`, [topic, group, reason]);
  const filter = `<form method="get" action="/dead-letters" class="filter">
<label>Topic <input name="topic" value="${esc(topic ?? '')}"></label>
<label>Group <input name="group" value="${esc(group ?? '')}"></label>
<label>Reason <input name="reason" value="${esc(reason ?? '')}"></label>
<button type="submit">Filter</button></form>`;
  const list = table([
    ['', (r) => `<input type="checkbox" name="item" value="${esc(item(r))}" aria-label="select ${esc(r.msg_id)}">`],
    ['id', (r) => link('/dead-letter', { id: r.msg_id, group: r.consumer_group ?? '' }, r.msg_id)],
    ['topic', (r) => esc(r.topic)],
    ['group', (r) => esc(r.consumer_group ?? '(check-back)')],
    ['key', (r) => esc(r.key ?? '')],
    ['attempts', (r) => number(r.attempts)],
    ['reason', (r) => esc(r.reason)],
    ['last error', (r) => esc(r.last_error ?? '')],
    ['dead at', (r) => esc(time(r.dead_at))],
  ], rows, { id: 'dead-letters', empty: 'No dead letters (of the topics you may receive from).' });
  const more = rows.length === LIST
    ? `<p class="hint">The newest ${LIST} are shown: narrow the filter to see others.</p>` : '';
  const body = rows.length === 0 ? `${filter}\n${list}` : `${filter}${more}
<form method="post" action="/dead-letters/confirm">${csrfField(ctx.session.csrf)}${filterFields(topic, group, reason)}
${list}
<p class="actions"><button type="submit" name="action" value="redrive">Redrive selected…</button>
<button type="submit" name="action" value="purge" class="danger">Purge selected…</button></p></form>`;
  return page({ ...ctx.layout, title: 'Dead letters', body });
}

export async function deadLetter(ctx) {
  const id = ctx.query.get('id') ?? '';
  const group = ctx.query.get('group') || null;
  if (!/^-?\d{1,19}$/.test(id))
    return page({ ...ctx.layout, title: 'Dead letter', body: '<p class="empty">No such dead letter.</p>' });
  const { rows } = await ctx.db.query(
    `SELECT msg_id::text AS msg_id, topic, consumer_group, key, tags, headers, payload, sent_at,
            attempts, reason, last_error, first_failed_at, dead_at
       FROM tx_message.dead_letters
      WHERE msg_id = $1::bigint AND consumer_group IS NOT DISTINCT FROM $2`, [id, group]);
  if (rows.length === 0)
    return page({ ...ctx.layout, title: `Dead letter ${id}`, body: '<p class="empty">No such dead letter, or you may not receive from its topic.</p>' });
  const r = rows[0];
  const facts = table([
    ['topic', () => link('/topic', { name: r.topic }, r.topic)],
    ['group', () => esc(r.consumer_group ?? '(check-back)')],
    ['key', () => esc(r.key ?? '')],
    ['attempts', () => number(r.attempts)],
    ['reason', () => esc(r.reason)],
    ['sent', () => esc(time(r.sent_at))],
    ['first failed', () => esc(time(r.first_failed_at))],
    ['dead at', () => esc(time(r.dead_at))],
  ], [r]);
  const one = `<form method="post" action="/dead-letters/confirm">${csrfField(ctx.session.csrf)}
<input type="hidden" name="item" value="${esc(item(r))}">
<button type="submit" name="action" value="redrive">Redrive…</button>
<button type="submit" name="action" value="purge" class="danger">Purge…</button></form>`;
  return page({
    ...ctx.layout, title: `Dead letter ${id}`,
    body: `${facts}\n<h2>Last error</h2>\n<pre class="error">${esc(r.last_error ?? '')}</pre>
<h2>Payload</h2>\n${json(r.payload)}\n<h2>Headers</h2>\n${json(r.headers)}\n${one}
<p>${link('/message', { id: r.msg_id }, 'Trace of this message')}</p>`,
  });
}

// "group:id", the group empty for a check-back dead letter.
function item(r) {
  return `${r.consumer_group ?? ''}:${r.msg_id}`;
}

// The selected dead letters, checked: [{ group (or null), id }].
export function parseItems(values) {
  const out = [];
  for (const v of values) {
    const m = /^(.*):(-?\d{1,19})$/s.exec(v);
    if (m)
      out.push({ group: m[1] === '' ? null : m[1], id: m[2] });
  }
  return out;
}

const VERB = { redrive: 'Redrive', purge: 'Purge' };

// The confirmation page of an action on dead letters.
export function confirmPage(ctx, action, items, form) {
  if (!Object.hasOwn(VERB, action) || items.length === 0)
    return page({ ...ctx.layout, title: 'Dead letters', body: '<p class="empty">Select dead letters and an action first.</p><p><a href="/dead-letters">Back</a></p>' });
  const hidden = items.map((i) => `<input type="hidden" name="item" value="${esc(`${i.group ?? ''}:${i.id}`)}">`).join('\n');
  const list = items.map((i) => `<li>${esc(i.id)} (${esc(i.group ?? 'check-back')})</li>`).join('');
  const what = action === 'purge'
    ? 'They are deleted for good.'
    : 'Each gets a fresh round of attempts, starting at attempt 1.';
  return page({
    ...ctx.layout, title: `${VERB[action]} ${items.length} dead letter(s)?`,
    body: `<p>${esc(what)}</p><ul>${list}</ul>
<form method="post" action="/dead-letters/do">${csrfField(ctx.session.csrf)}
<input type="hidden" name="action" value="${esc(action)}">
${filterFields(form.get('back_topic'), form.get('back_group'), form.get('back_reason'))}
${hidden}
<button type="submit" id="confirm" class="${action === 'purge' ? 'danger' : ''}">${esc(VERB[action])}</button>
<a href="/dead-letters">Cancel</a></form>`,
  });
}

// Run a confirmed action, group by group, in one transaction (all or
// nothing); returns a message for the next page.
export async function runAction(ctx, action, items) {
  if (!Object.hasOwn(VERB, action) || items.length === 0)
    return 'Nothing was selected.';
  const byGroup = new Map();
  for (const i of items) {
    const k = i.group ?? '';
    if (!byGroup.has(k))
      byGroup.set(k, []);
    byGroup.get(k).push(i.id);
  }
  // [check-back dead letters (ids), a group's (group, ids)]
  const sql = {
    redrive: ['SELECT tx_redrive_half($1::bigint[]) AS n', 'SELECT tx_redrive($1, $2::bigint[]) AS n'],
    purge: ["SELECT tx_purge_half_dead_letters('0', $1::bigint[]) AS n",
            "SELECT tx_purge_dead_letters($1, '0', $2::bigint[]) AS n"],
  }[action];
  let done = 0;
  const client = await ctx.db.connect();
  try {
    await client.query('BEGIN');
    for (const [g, ids] of byGroup) {
      const res = g === ''
        ? await client.query(sql[0], [ids])
        : await client.query(sql[1], [g, ids]);
      done += Number(res.rows[0].n);
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    client.release();
  }
  return `${action === 'purge' ? 'Purged' : 'Redriven'}: ${done} dead letter(s).`;
}
