// The console in a real browser (Debian's chromium, driven by
// puppeteer-core: no browser is downloaded).  Run by t/015_console.pl,
// which prepares the database, starts the console and checks in the
// database what this script reports:
//
//   CONSOLE_URL   the console
//   OUT_DIR       where the screenshots go (one PNG per page)
//   ADMIN_USER    a role that may see and do everything
//   VIEWER_USER, VIEWER_PASSWORD   a role without 'receive' on topic SECRET_TOPIC
//   SECRET_TOPIC, SECRET_MARKER    that topic, and a string its payloads hold
//   CHROMIUM      the browser (default /usr/bin/chromium)
//
// It prints one JSON object: what the pages showed.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const url = process.env.CONSOLE_URL;
const out = process.env.OUT_DIR;
fs.mkdirSync(out, { recursive: true });
const report = { screenshots: [] };

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const tab = await browser.newPage();
  await tab.setViewport({ width: 1280, height: 900 });

  async function shot(name) {
    const file = path.join(out, `${name}.png`);
    await tab.screenshot({ path: file, fullPage: true });
    report.screenshots.push(file);
  }
  async function go(p) {
    const res = await tab.goto(new URL(p, url).href, { waitUntil: 'load' });
    return res.status();
  }
  async function clickAndWait(selector) {
    await Promise.all([tab.waitForNavigation({ waitUntil: 'load' }), tab.click(selector)]);
  }
  async function logIn(user, password) {
    await go('/login');
    await tab.type('input[name=user]', user);
    await tab.type('input[name=password]', password ?? '');
    await clickAndWait('#login');
    return tab.url();
  }
  async function logOut() {
    await clickAndWait('header form button');
  }
  const text = () => tab.evaluate(() => document.body.innerText);

  // refused logins
  await logIn(process.env.ADMIN_USER, 'not-the-password');
  report.wrong_password = (await text()).includes('Wrong role or password') ? 401 : 0;
  await logIn(process.env.ADMIN_USER, '');
  report.empty_password = (await text()).includes('Give a role and its password') ? 401 : 0;
  // a request addressed to another name, as a rebinding DNS would send it
  report.other_host = await new Promise((resolve, reject) => {
    const u = new URL(url);
    http.get({ host: u.hostname, port: u.port, path: '/login', headers: { Host: `evil.example:${u.port}` } },
      (res) => { res.resume(); resolve(res.statusCode); }).on('error', reject);
  });

  // as the administrator: every page, and a redrive
  report.admin_landing = await logIn(process.env.ADMIN_USER, process.env.ADMIN_PASSWORD);
  await go('/');
  report.backlogs = await tab.$$eval('#groups span.backlog', (els) =>
    els.map((e) => ({ topic: e.dataset.topic, group: e.dataset.group, backlog: e.textContent.trim() })));
  await shot('overview');
  await go(`/topic?name=${encodeURIComponent(process.env.MAIN_TOPIC)}`);
  await shot('topic');
  report.topic_message_ids = await tab.$$eval('#messages tbody tr td:first-child a', (els) => els.map((e) => e.textContent));
  await go(`/group?name=${encodeURIComponent(process.env.MAIN_GROUP)}`);
  await shot('group');
  await go('/half');
  await shot('half');
  report.half_rows = await tab.$$eval('#half tbody tr', (els) => els.length);
  if (report.topic_message_ids.length > 0) {
    await go(`/message?id=${report.topic_message_ids[0]}`);
    report.trace_states = await tab.$$eval('#trace span.state', (els) => els.map((e) => e.textContent));
    await shot('message');
  }

  await go('/dead-letters');
  await shot('dead-letters');
  report.dead_letters = await tab.$$eval('#dead-letters tbody tr td:nth-child(2) a', (els) => els.map((e) => e.textContent));
  // one dead letter: its page, then redrive, confirmed
  await clickAndWait('#dead-letters tbody tr td:nth-child(2) a');
  await shot('dead-letter');
  report.dead_letter_page = (await text()).includes('Last error');
  await clickAndWait('button[value=redrive]');
  await shot('redrive-confirm');
  await clickAndWait('#confirm');
  report.redriven = report.dead_letters[0];
  report.redrive_flash = await tab.$eval('p.flash', (e) => e.textContent);
  await shot('dead-letters-after-redrive');

  // seek the pull group past its backlog, confirmed
  await go(`/group?name=${encodeURIComponent(process.env.SEEK_GROUP ?? 'pull')}`);
  await tab.$eval('input[name=target]', (e) => { e.value = ''; });
  await tab.type('input[name=target]', 'latest');
  await clickAndWait('form.action button');
  await shot('seek-confirm');
  await clickAndWait('#confirm');
  report.seek_flash = await tab.$eval('p.flash', (e) => e.textContent);

  // commit the half message by hand, confirmed
  await go('/half');
  await clickAndWait('#half button[value=commit]');
  await clickAndWait('#confirm');
  report.half_flash = await tab.$eval('p.flash', (e) => e.textContent);

  // forged POSTs with the session's cookie: without the CSRF token, and from another origin
  const cookie = (await tab.cookies()).find((c) => c.name === 'txm_session');
  const csrf = await tab.$eval('input[name=csrf]', (e) => e.value);
  const forge = async (body, origin) => (await fetch(new URL('/dead-letters/do', url), {
    method: 'POST', redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: `txm_session=${cookie.value}`,
               ...(origin ? { Origin: origin } : {}) },
    body,
  })).status;
  report.forged_without_token = await forge('action=purge&item=x:1');
  report.forged_other_origin = await forge(`action=purge&item=x:1&csrf=${csrf}`, 'http://evil.example');
  await logOut();

  // as a role without 'receive' on the secret topic
  report.viewer_landing = await logIn(process.env.VIEWER_USER, process.env.VIEWER_PASSWORD);
  const seen = {};
  for (const [name, p] of [
    ['viewer-overview', '/'],
    ['viewer-topic', `/topic?name=${encodeURIComponent(process.env.SECRET_TOPIC)}`],
    ['viewer-main-topic', `/topic?name=${encodeURIComponent(process.env.MAIN_TOPIC)}`],
    ['viewer-dead-letters', '/dead-letters'],
    ['viewer-half', '/half'],
    ['viewer-message', `/message?id=${encodeURIComponent(process.env.SECRET_ID ?? '')}`],
    ['viewer-find', `/message?topic=${encodeURIComponent(process.env.SECRET_TOPIC)}&key=${encodeURIComponent(process.env.SECRET_KEY ?? '')}`],
  ]) {
    const status = await go(p);
    const html = await tab.content();
    seen[name] = { status, secret: html.includes(process.env.SECRET_MARKER), main_payloads: html.includes('&quot;n&quot;') || html.includes('"n"') };
    if (html.includes('<script>alert') || html.includes('<img src=x'))
      report.raw_markup = true;
    await shot(name);
  }
  report.viewer = seen;
  await logOut();
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
