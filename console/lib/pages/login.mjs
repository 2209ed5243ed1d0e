// The login page: a PostgreSQL role and its password.  The console keeps no
// users of its own; it connects as the role, so every page shows and every
// action does what that role's privileges allow.
import { esc, page } from '../html.mjs';

export function login({ error, user, token, database }) {
  return page({
    title: 'Log in',
    body: `<p>Log in to database <b>${esc(database)}</b> with a PostgreSQL role.</p>
${error ? `<p class="flash error">${esc(error)}</p>` : ''}
<form method="post" action="/login" class="login">
<input type="hidden" name="token" value="${esc(token)}">
<label>Role <input name="user" value="${esc(user ?? '')}" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit" id="login">Log in</button></form>`,
  });
}
