// The seek action of the group page: tx_seek(group, topic, target),
// confirmed first (it replays or skips messages).
import { csrfField, esc, page } from '../html.mjs';

export function seekConfirmPage(ctx, form) {
  const group = form.get('group') ?? '';
  const topic = form.get('topic') ?? '';
  const target = form.get('target') ?? '';
  return page({
    ...ctx.layout, title: `Move group ${group} on topic ${topic} to ${target}?`,
    body: `<p>Messages from that point on come again, those the group had acked included; those before it count as finished. Leases and retries of the group on the topic are dropped.</p>
<form method="post" action="/seek">${csrfField(ctx.session.csrf)}
<input type="hidden" name="group" value="${esc(group)}"><input type="hidden" name="topic" value="${esc(topic)}">
<input type="hidden" name="target" value="${esc(target)}">
<button type="submit" name="confirm" value="yes" id="confirm">Seek</button>
<a href="/group?name=${esc(encodeURIComponent(group))}">Cancel</a></form>`,
  });
}

export async function seekAction(ctx, form) {
  const { rows } = await ctx.db.query('SELECT tx_seek($1, $2, $3::text) AS ahead',
    [form.get('group'), form.get('topic'), form.get('target')]);
  return `Group ${form.get('group')} moved on topic ${form.get('topic')}: ${rows[0].ahead} message(s) ahead.`;
}
