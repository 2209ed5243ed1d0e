// Page load times of the console, for bench/run.sh: logs in as LOAD_USER
// (password LOAD_PASSWORD) at CONSOLE_URL, then fetches each page ROUNDS
// times (the HTML, as a browser's first request for it) and prints one line
// per page: "path median_ms max_ms bytes".
const url = process.env.CONSOLE_URL;
const rounds = Number(process.env.ROUNDS ?? 5);
const pages = (process.env.PAGES ?? '/ /dead-letters /half').split(' ');

function cookieOf(res, name) {
  for (const c of res.headers.getSetCookie())
    if (c.startsWith(`${name}=`))
      return c.split(';')[0];
  return null;
}

const form = await fetch(new URL('/login', url));
const loginCookie = cookieOf(form, 'txm_login');
const token = (await form.text()).match(/name="token" value="([^"]+)"/)[1];
const login = await fetch(new URL('/login', url), {
  method: 'POST', redirect: 'manual',
  headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: loginCookie },
  body: new URLSearchParams({ token, user: process.env.LOAD_USER, password: process.env.LOAD_PASSWORD ?? '' }),
});
const session = cookieOf(login, 'txm_session');
if (!session)
  throw new Error(`login failed: ${login.status}`);

for (const p of pages) {
  const times = [];
  let bytes = 0;
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    const res = await fetch(new URL(p, url), { headers: { Cookie: session } });
    const body = await res.text();
    times.push(performance.now() - t0);
    bytes = body.length;
    if (res.status !== 200)
      throw new Error(`${p}: HTTP ${res.status}`);
  }
  times.sort((a, b) => a - b);
  console.log(`${p} ${times[Math.floor(times.length / 2)].toFixed(1)} ${times[times.length - 1].toFixed(1)} ${bytes}`);
}
