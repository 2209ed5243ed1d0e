// HTML for the console's pages: escaping, the layout, tables and charts.
// Every value that comes from the database or the request goes through
// esc() (or attr()), so a payload, a topic name or an error message is
// shown as text, never run as markup.

export function esc(value) {
  if (value === null || value === undefined)
    return '';
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

// A URL with query parameters, each encoded.
export function href(path, params = {}) {
  const q = Object.entries(params)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  return q ? `${path}?${q}` : path;
}

export function link(path, params, text) {
  return `<a href="${esc(href(path, params))}">${esc(text)}</a>`;
}

// A JSON value (payload, headers) as indented text.
export function json(value) {
  if (value === null || value === undefined)
    return '';
  return `<pre class="json">${esc(JSON.stringify(value, null, 2))}</pre>`;
}

// The same on one line, for a table cell.
export function jsonInline(value) {
  if (value === null || value === undefined)
    return '';
  return `<code class="json">${esc(JSON.stringify(value))}</code>`;
}

export function number(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(Number(n)))
    return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

// An interval as PostgreSQL returns it through node-postgres (an object), shortly.
export function interval(iv) {
  if (iv === null || iv === undefined)
    return '–';
  if (typeof iv === 'string')
    return esc(iv);
  const parts = [];
  for (const [k, unit] of [['days', 'd'], ['hours', 'h'], ['minutes', 'min']])
    if (iv[k])
      parts.push(`${iv[k]} ${unit}`);
  const secs = (iv.seconds ?? 0) + (iv.milliseconds ?? 0) / 1000;
  if (secs || parts.length === 0)
    parts.push(`${Math.round(secs * 10) / 10} s`);
  return parts.join(' ');
}

export function time(t) {
  if (!t)
    return '–';
  const d = t instanceof Date ? t : new Date(t);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// A table: columns are [header, row => cell HTML (already escaped)].
export function table(columns, rows, opts = {}) {
  if (rows.length === 0)
    return `<p class="empty">${esc(opts.empty ?? 'Nothing here.')}</p>`;
  const head = columns.map(([h]) => `<th>${esc(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${columns.map(([, f]) => `<td>${f(r)}</td>`).join('')}</tr>`).join('\n');
  return `<table${opts.id ? ` id="${esc(opts.id)}"` : ''}><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

// A small line chart, as inline SVG: series is [{ label, points: [[t, v], ...] }].
export function chart(title, series, opts = {}) {
  const width = opts.width ?? 640;
  const height = opts.height ?? 140;
  const pad = 30;
  const all = series.flatMap((s) => s.points);
  if (all.length < 2)
    return `<figure class="chart"><figcaption>${esc(title)}</figcaption><p class="empty">Samples are taken every few seconds while the console runs; the chart appears after two.</p></figure>`;
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  const vmax = Math.max(1, ...all.map((p) => p[1]));
  const x = (t) => pad + ((t - t0) / Math.max(1, t1 - t0)) * (width - 2 * pad);
  const y = (v) => height - pad / 2 - (v / vmax) * (height - pad);
  // colours by class: the Content-Security-Policy allows no inline style
  const lines = series.map((s, i) => {
    const d = s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
    return `<polyline class="series-${i % 4}" fill="none" stroke-width="1.5" points="${d}"/>`;
  }).join('');
  const legend = series.map((s, i) =>
    `<span class="series-${i % 4}">■</span> ${esc(s.label)}`).join(' &nbsp; ');
  const minutes = Math.round((t1 - t0) / 60000);
  return `<figure class="chart"><figcaption>${esc(title)} — ${legend}</figcaption>
<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(title)}">
<line x1="${pad}" y1="${height - pad / 2}" x2="${width - pad}" y2="${height - pad / 2}" stroke="#999"/>
<text x="2" y="12" font-size="10">${esc(number(vmax, vmax < 10 ? 1 : 0))}</text>
<text x="${pad}" y="${height - 2}" font-size="10">−${minutes} min</text>
<text x="${width - pad - 20}" y="${height - 2}" font-size="10">now</text>
${lines}</svg></figure>`;
}

// The page around a body.  refresh: seconds before the browser reloads it.
export function page({ title, user, csrf, body, refresh, flash }) {
  const nav = user
    ? `<nav><a href="/">Overview</a> <a href="/dead-letters">Dead letters</a> <a href="/half">Half messages</a> <a href="/message">Message</a>
<span class="who">${esc(user)}</span>
<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="${esc(csrf)}"><button type="submit">Log out</button></form></nav>`
    : '';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
${refresh ? `<meta http-equiv="refresh" content="${Number(refresh)}">` : ''}
<title>${esc(title)} · tx_message</title>
<link rel="stylesheet" href="/style.css">
</head><body>
<header><span class="brand">tx_message</span> ${nav}</header>
<main>
${flash ? `<p class="flash">${esc(flash)}</p>` : ''}
<h1>${esc(title)}</h1>
${body}
</main></body></html>
`;
}

// A hidden CSRF field for a form.
export function csrfField(token) {
  return `<input type="hidden" name="csrf" value="${esc(token)}">`;
}
