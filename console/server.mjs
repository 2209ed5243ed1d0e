// tx_message console: a small web application for operators.
//
//   node server.mjs --db 'postgres://host:5432/dbname' [--listen 127.0.0.1] [--port 8432]
//                   [--origin https://console.example.com]
//
// It connects to one database as the PostgreSQL role the operator logs in
// with (no users of its own), so every page shows and every action does
// only what that role's tx_message privileges allow.  A login counts only
// if the server checked the password: a role that trust or peer
// authentication lets in without one is refused.  It listens on localhost
// unless told otherwise, and answers only requests addressed to it (the
// Host header: no DNS rebinding).  Sessions live in memory, a few at most,
// for 8 hours at most: a random HttpOnly, SameSite=Strict cookie; every
// POST carries the session's CSRF token and, when the browser sends one,
// an Origin of this console.  The log has the method, path, status and
// role of each request, never a password, a query string or a payload.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import parseConnection from 'pg-connection-string';

import { page } from './lib/html.mjs';
import { Sampler } from './lib/sampler.mjs';
import { overview } from './lib/pages/overview.mjs';
import { topic } from './lib/pages/topic.mjs';
import { group } from './lib/pages/group.mjs';
import { backTo, confirmPage, deadLetter, deadLetters, parseItems, runAction } from './lib/pages/deadletters.mjs';
import { half, halfAction, halfConfirmPage } from './lib/pages/half.mjs';
import { message } from './lib/pages/message.mjs';
import { login } from './lib/pages/login.mjs';
import { seekConfirmPage, seekAction } from './lib/pages/seek.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: {
    db: { type: 'string', default: process.env.TXM_CONSOLE_DB ?? '' },
    listen: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8432' },
    'sample-every': { type: 'string', default: '5' },
    origin: { type: 'string', multiple: true, default: [] },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  console.log(`usage: node server.mjs --db postgres://HOST:PORT/DBNAME [--listen ADDRESS] [--port PORT] [--origin URL] [--sample-every SECONDS]
  --db      the database (no credentials: the operator logs in with a PostgreSQL role);
            postgres:///DBNAME?host=/var/run/postgresql for a Unix socket; default: PGHOST, PGPORT, PGDATABASE
  --listen  the address to listen on (default 127.0.0.1: this machine only)
  --port    the port (default 8432)
  --origin  the address browsers use when it is not this one, e.g. behind a TLS proxy
            (https://console.example.com; https makes the cookies Secure); may be repeated`);
  process.exit(0);
}

// The database: credentials in --db are refused, so none ends up in a shell history or a log.
const base = opts.db ? parseConnection.parse(opts.db) : {};
if (base.password) {
  console.error('console: --db must not hold a password; operators log in with their own role');
  process.exit(2);
}
const dbConfig = {
  host: base.host ?? process.env.PGHOST,
  port: base.port ? Number(base.port) : (process.env.PGPORT ? Number(process.env.PGPORT) : undefined),
  database: base.database ?? process.env.PGDATABASE ?? 'postgres',
  ssl: base.ssl,
};
if (!/^\d{1,4}$/.test(opts['sample-every']) || Number(opts['sample-every']) < 1 || Number(opts['sample-every']) > 3600) {
  console.error('console: --sample-every must be 1 to 3600 seconds');
  process.exit(2);
}
const SAMPLE_MS = Number(opts['sample-every']) * 1000;
const IDLE_MS = 30 * 60 * 1000;			// a session unused this long ends
const LIFETIME_MS = 8 * 60 * 60 * 1000;	// and any session after this
const MAX_SESSIONS = 32;
const sessions = new Map();	// sid -> { user, pool, csrf, sampler, seen, born }

// The origins browsers may use: this address (and localhost for a local one), and --origin.
const origins = new Set(opts.origin.map((o) => new URL(o).origin));
const SECURE = [...origins].some((o) => o.startsWith('https:'));
const SESSION_COOKIE = SECURE ? '__Host-txm_session' : 'txm_session';
function allowedHost(host) {
  const port = Number(opts.port);
  const local = ['127.0.0.1', 'localhost', '[::1]'].map((h) => `${h}:${port}`);
  const bound = opts.listen.includes(':') ? `[${opts.listen}]:${port}` : `${opts.listen}:${port}`;
  return host === bound || local.includes(host) || [...origins].some((o) => new URL(o).host === host);
}

// A role name as the log shows it: printable, short, quoted.
function logName(user) {
  if (user === undefined || user === null)
    return '-';
  return JSON.stringify(String(user).replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 64));
}

function log(req, status, user) {
  console.log(`${new Date().toISOString()} ${req.method} ${req.url.split('?')[0]} ${status} ${logName(user)}`);
}

function cookies(req) {
  const out = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0)
      continue;
    try {
      out[part.slice(0, i).trim()] = decodeURIComponent(part.slice(i + 1).trim());
    } catch {
      // another application's cookie for this host, not ours
    }
  }
  return out;
}

// Failed logins per client address: at most 5 a minute.
const failures = new Map();
function throttled(req) {
  const key = req.socket.remoteAddress;
  const now = Date.now();
  const recent = (failures.get(key) ?? []).filter((t) => now - t < 60000);
  failures.set(key, recent);
  return recent.length >= 5;
}
function failed(req) {
  const key = req.socket.remoteAddress;
  if (!failures.has(key))
    failures.set(key, []);
  failures.get(key).push(Date.now());
}

function sameToken(a, b) {
  const x = Buffer.from(String(a ?? ''));
  const y = Buffer.from(String(b ?? ''));
  return x.length === y.length && x.length > 0 && crypto.timingSafeEqual(x, y);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 1e6)
      throw Object.assign(new Error('request too large'), { status: 413 });
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const HEADERS = {
  'Content-Type': 'text/html; charset=utf-8',
  'Content-Security-Policy': "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};

function send(res, status, html, extra = {}) {
  res.writeHead(status, { ...HEADERS, ...extra });
  res.end(html);
}

function redirect(res, to, extra = {}) {
  res.writeHead(303, { Location: to, 'Cache-Control': 'no-store', ...extra });
  res.end();
}

function endSession(sid) {
  const s = sid ? sessions.get(sid) : undefined;
  if (!s)
    return;
  sessions.delete(sid);
  s.sampler.stop();
  s.pool.end().catch(() => {});
}

setInterval(() => {
  const now = Date.now();
  for (const [sid, s] of sessions)
    if (now - s.seen > IDLE_MS || now - s.born > LIFETIME_MS)
      endSession(sid);
    else if (now - s.viewed > 10 * 60 * 1000)
      s.sampler.stop();		// nobody has looked for 10 minutes: no more samples until someone does
}, 30000).unref();

function cookie(name, value, path, maxAge) {
  return `${name}=${value}; HttpOnly; SameSite=Strict; Path=${path}${SECURE ? '; Secure' : ''}${maxAge !== undefined ? `; Max-Age=${maxAge}` : ''}`;
}

// Log in: connect as the role, with a password the server must have asked
// for, check that tx_message is there, and make a session (ending the one
// this browser had).
async function doLogin(req, res) {
  const form = await readForm(req);
  const c = cookies(req);
  const token = crypto.randomBytes(16).toString('hex');
  const user = form.get('user') ?? '';
  const password = form.get('password') ?? '';
  const again = (error, status = 200) => {
    send(res, status, login({ error, user: user.slice(0, 128), token, database: dbConfig.database }),
      { 'Set-Cookie': cookie('txm_login', token, '/login') });
    log(req, status, user);
  };
  if (!sameToken(form.get('token'), c.txm_login))
    return again('Your login form expired; log in again.', 400);
  if (throttled(req))
    return again('Too many failed logins from here; wait a minute.', 429);
  if (user === '' || password === '' || user.length > 63) {
    failed(req);
    return again('Give a role and its password.', 401);
  }
  let asked = false;
  const pool = new pg.Pool({
    ...dbConfig, user, max: 3, application_name: 'tx_message console',
    // a function, so that we learn whether the server asked for it at all
    password: async () => { asked = true; return password; },
    idleTimeoutMillis: 60000, connectionTimeoutMillis: 10000,
    statement_timeout: 30000,
  });
  pool.on('error', () => {});
  let problem = null;
  try {
    const r = await pool.query("SELECT extversion FROM pg_extension WHERE extname = 'tx_message'");
    if (!asked)
      problem = 'The server let this role in without checking a password (trust or peer authentication); the console needs one that does (scram-sha-256 or md5 in pg_hba.conf).';
    else if (r.rows.length === 0)
      problem = 'tx_message is not installed in this database.';
  } catch (e) {
    // no detail for a visitor not logged in: which of role, password or pg_hba refused is the server's log's to say
    problem = e.code === '28P01' || e.code === '28000'
      ? 'Wrong role or password, or this role may not connect.'
      : `The database did not accept the connection (${/^[0-9A-Z]{5}$/.test(e.code ?? '') ? e.code : 'no answer'}).`;
  }
  if (problem) {
    await pool.end().catch(() => {});
    failed(req);
    return again(problem, 401);
  }
  endSession(c[SESSION_COOKIE]);
  if (sessions.size >= MAX_SESSIONS) {
    // the least recently used one makes room
    const oldest = [...sessions.entries()].sort((a, b) => a[1].seen - b[1].seen)[0];
    endSession(oldest[0]);
  }
  const sid = crypto.randomBytes(32).toString('hex');
  const sampler = new Sampler(pool, SAMPLE_MS);
  sampler.start();
  const now = Date.now();
  sessions.set(sid, { user, pool, csrf: crypto.randomBytes(32).toString('hex'), sampler, seen: now, born: now, viewed: now });
  log(req, 303, user);
  redirect(res, '/', { 'Set-Cookie': cookie(SESSION_COOKIE, sid, '/') });
}

// A page's context: the session's pool, the query, the layout's fields.
function context(session, url, flash) {
  return {
    db: session.pool,
    session,
    query: url.searchParams,
    layout: { user: session.user, csrf: session.csrf, flash },
  };
}

const GET = {
  '/': overview,
  '/topic': topic,
  '/group': group,
  '/dead-letters': deadLetters,
  '/dead-letter': deadLetter,
  '/half': half,
  '/message': message,
};

// POST handlers: (ctx, form) -> { html } or { redirect, flash }.
const POST = {
  '/dead-letters/confirm': async (ctx, form) => ({ html: confirmPage(ctx, form.get('action'), parseItems(form.getAll('item')), form) }),
  '/dead-letters/do': async (ctx, form) => ({
    redirect: backTo(form), flash: await runAction(ctx, form.get('action'), parseItems(form.getAll('item'))),
  }),
  '/half/confirm': async (ctx, form) => ({ html: halfConfirmPage(ctx, form.get('action'), form.get('id')) }),
  '/half/do': async (ctx, form) => ({ redirect: '/half', flash: await halfAction(ctx, form.get('action'), form.get('id')) }),
  '/seek': async (ctx, form) => (form.get('confirm') === 'yes'
    ? { redirect: `/group?name=${encodeURIComponent(form.get('group') ?? '')}`, flash: await seekAction(ctx, form) }
    : { html: seekConfirmPage(ctx, form) }),
};

// The origin a browser says a POST comes from must be this console's.
function sameOrigin(req) {
  const origin = req.headers.origin;
  if (!origin)
    return true;
  try {
    const o = new URL(origin);
    return origins.has(o.origin) || (o.protocol === 'http:' && o.host === req.headers.host);
  } catch {
    return false;
  }
}

async function handle(req, res) {
  // a request for another name is one a rebinding DNS sent here
  if (!allowedHost(req.headers.host ?? '')) {
    res.writeHead(421, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('This console does not answer for that host name (see --origin).\n');
    return log(req, 421);
  }
  const url = new URL(req.url, 'http://console.invalid');
  if (req.method === 'GET' && url.pathname === '/style.css') {
    res.writeHead(200, { 'Content-Type': 'text/css; charset=utf-8', 'Cache-Control': 'max-age=3600', 'X-Content-Type-Options': 'nosniff' });
    return res.end(fs.readFileSync(path.join(here, 'public', 'style.css')));
  }
  if (req.method === 'GET' && url.pathname === '/favicon.ico') {
    res.writeHead(204, { 'Cache-Control': 'max-age=86400' });
    return res.end();
  }
  if (req.method === 'GET' && url.pathname === '/login') {
    // the same token for every login page of this browser, so that two tabs (or a reload) both work
    const prior = cookies(req).txm_login;
    const token = /^[0-9a-f]{32}$/.test(prior ?? '') ? prior : crypto.randomBytes(16).toString('hex');
    send(res, 200, login({ token, database: dbConfig.database }),
      { 'Set-Cookie': cookie('txm_login', token, '/login') });
    return log(req, 200);
  }
  if (req.method === 'POST' && url.pathname === '/login') {
    if (!sameOrigin(req))
      return send(res, 403, 'Forbidden');
    return doLogin(req, res);
  }

  const sid = cookies(req)[SESSION_COOKIE];
  const session = sid ? sessions.get(sid) : undefined;
  if (!session) {
    log(req, 303);
    return redirect(res, '/login');
  }
  session.seen = Date.now();
  if (req.method === 'GET') {
    session.viewed = session.seen;
    session.sampler.resume();
  }
  const flash = session.flash;
  session.flash = null;
  const ctx = context(session, url, flash);
  try {
    if (req.method === 'GET' && GET[url.pathname]) {
      send(res, 200, await GET[url.pathname](ctx));
      return log(req, 200, session.user);
    }
    if (req.method === 'POST') {
      const form = await readForm(req);
      if (!sameOrigin(req) || !sameToken(form.get('csrf'), session.csrf)) {
        send(res, 403, page({ ...ctx.layout, title: 'Forbidden', body: '<p>This form is not from this session of the console. Reload the page and try again.</p>' }));
        return log(req, 403, session.user);
      }
      if (url.pathname === '/logout') {
        endSession(sid);
        log(req, 303, session.user);
        return redirect(res, '/login', { 'Set-Cookie': cookie(SESSION_COOKIE, '', '/', 0) });
      }
      if (POST[url.pathname]) {
        const out = await POST[url.pathname](ctx, form);
        if (out.html) {
          send(res, 200, out.html);
          return log(req, 200, session.user);
        }
        session.flash = out.flash;
        log(req, 303, session.user);
        return redirect(res, out.redirect);
      }
    }
    send(res, 404, page({ ...ctx.layout, title: 'Not found', body: '<p>No such page.</p>' }));
    log(req, 404, session.user);
  } catch (e) {
    // what PostgreSQL said (a privilege missing, a bad input), for the operator
    const status = e.status ?? 400;
    send(res, status, page({
      ...ctx.layout, title: 'Refused',
      body: `<p class="flash error">${e.code ? `${escapeText(e.code)}: ` : ''}${escapeText(e.message)}</p><p><a href="/">Overview</a></p>`,
    }));
    log(req, status, session.user);
  }
}

function escapeText(s) {
  return String(s).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => {
    console.error(`console: ${e.message}`);
    if (!res.headersSent)
      send(res, 500, 'Internal error');
  });
});
server.listen(Number(opts.port), opts.listen, () => {
  const a = server.address();
  console.log(`tx_message console for database ${dbConfig.database}: http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/`);
});
for (const sig of ['SIGINT', 'SIGTERM'])
  process.on(sig, () => {
    for (const sid of [...sessions.keys()])
      endSession(sid);
    server.close(() => process.exit(0));
  });
