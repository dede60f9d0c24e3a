// Sign-in page: the first piece of the web view. It talks only to the JSON API.
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
    credentials: 'same-origin',
  });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  return { status: res.status, data };
}

function show(user) {
  $('login').hidden = !!user;
  $('me').hidden = !user;
  if (user) {
    $('who').textContent = `${user.name} <${user.email}>`;
    $('role').textContent = user.role;
  }
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const { status, data } = await api('POST', '/api/v1/session', {
    email: form.get('email'),
    password: form.get('password'),
  });
  $('error').textContent = status === 200 ? '' : (data?.error?.message ?? `error ${status}`);
  if (status === 200) show(data.user);
});

$('logout').addEventListener('click', async () => {
  await api('DELETE', '/api/v1/session');
  show(null);
});

const me = await api('GET', '/api/v1/me');
show(me.status === 200 ? me.data.user : null);
