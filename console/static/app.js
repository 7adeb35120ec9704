// pushwire debug console. No dependencies, no build step. Every value that came from a
// client (channel names, events, payloads, user ids) is put in the page with textContent,
// never as HTML.
'use strict';

(function () {
  const MAX_LOG = 500; // rows kept in the event log
  const $ = (id) => document.getElementById(id);

  let source = null;
  let paused = false;
  let entries = []; // newest last
  let filterTimer = null;

  async function api(path, body) {
    const init = body === undefined
      ? { credentials: 'same-origin' }
      : { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
    const res = await fetch('api/' + path, init);
    let data = {};
    try { data = await res.json(); } catch (e) { /* empty answer */ }
    return { ok: res.ok, status: res.status, data };
  }

  function show(signedIn) {
    $('login').hidden = signedIn;
    $('dashboard').hidden = !signedIn;
    $('whoami').hidden = !signedIn;
  }

  async function start() {
    const s = await api('session');
    if (!s.ok) {
      show(false);
      return;
    }
    $('current-app').textContent = s.data.app_id;
    show(true);
    connect();
  }

  function setStatus(text, cls) {
    const el = $('stream-status');
    el.textContent = text;
    el.className = 'status ' + (cls || '');
  }

  function connect() {
    if (source) source.close();
    const q = new URLSearchParams();
    const ch = $('filter-channel').value.trim();
    const ev = $('filter-event').value.trim();
    if (ch) q.set('channel', ch);
    if (ev) q.set('event', ev);
    source = new EventSource('api/stream' + (q.toString() ? '?' + q : ''));
    source.addEventListener('open', () => setStatus('live', 'live'));
    source.addEventListener('error', async () => {
      setStatus('reconnecting…', 'down');
      const s = await api('session');
      if (!s.ok) { // the session ended (expired, server restarted, credential changed)
        source.close();
        source = null;
        show(false);
      }
    });
    source.addEventListener('snapshot', (e) => renderSnapshot(JSON.parse(e.data)));
    source.addEventListener('activity', (e) => addEntry(JSON.parse(e.data)));
    source.addEventListener('dropped', (e) => {
      $('dropped').textContent = '(' + JSON.parse(e.data).total + ' events dropped: this view fell behind)';
    });
  }

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    td.textContent = text === undefined || text === null ? '' : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function renderSnapshot(s) {
    const c = s.counts;
    $('stat-connections').textContent = c.connections;
    $('stat-channels').textContent = c.channels;
    $('stat-subscriptions').textContent = c.subscriptions;
    $('stat-presence-members').textContent = c.presence_members;
    $('stat-users').textContent = c.users;
    const body = $('channels');
    body.replaceChildren();
    for (const ch of s.channels) {
      const tr = document.createElement('tr');
      tr.dataset.channel = ch.name;
      cell(tr, ch.name);
      cell(tr, ch.subscriptions);
      const td = cell(tr, ch.name.startsWith('presence-') ? ch.users : '', 'members');
      if (ch.members && ch.members.length) td.textContent += ' — ' + ch.members.join(', ');
      body.appendChild(tr);
    }
    $('channels-empty').hidden = s.channels.length > 0;
    $('channels-truncated').hidden = !s.truncated;
  }

  function matches(e) {
    const ch = $('filter-channel').value.trim();
    const ev = $('filter-event').value.trim();
    return (!ch || (e.channel || '').includes(ch)) &&
      (!ev || (e.event || '').includes(ev) || e.kind.includes(ev));
  }

  function row(e) {
    const tr = document.createElement('tr');
    tr.className = 'k-' + e.kind;
    cell(tr, new Date(e.t).toLocaleTimeString());
    cell(tr, e.kind, 'kind');
    cell(tr, e.channel);
    cell(tr, e.event);
    cell(tr, [e.socket_id, e.user_id].filter(Boolean).join(' / '));
    const details = [];
    if (e.code) details.push(String(e.code));
    if (e.detail) details.push(e.detail);
    if (e.data) details.push(e.data);
    cell(tr, details.join(' · '));
    return tr;
  }

  function addEntry(e) {
    entries.push(e);
    if (entries.length > MAX_LOG) entries.shift();
    if (paused || !matches(e)) return;
    const body = $('log');
    body.insertBefore(row(e), body.firstChild);
    while (body.children.length > MAX_LOG) body.removeChild(body.lastChild);
  }

  function renderLog() {
    const body = $('log');
    body.replaceChildren();
    for (let i = entries.length - 1; i >= 0; i--) {
      if (matches(entries[i])) body.appendChild(row(entries[i]));
    }
  }

  function onFilter() {
    renderLog();
    clearTimeout(filterTimer);
    filterTimer = setTimeout(connect, 400); // the server filters too, so a busy app drops less
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('login-error').textContent = '';
    const r = await api('login', { app_id: $('app-id').value.trim(), credential: $('credential').value });
    if (!r.ok) {
      $('login-error').textContent = r.data.error || ('Sign-in failed (' + r.status + ')');
      return;
    }
    $('credential').value = '';
    start();
  });

  $('logout').addEventListener('click', async () => {
    await api('logout', {});
    if (source) source.close();
    source = null;
    entries = [];
    $('log').replaceChildren();
    show(false);
  });

  $('publish-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const out = $('pub-result');
    out.className = '';
    out.textContent = 'publishing…';
    const r = await api('publish', { channel: $('pub-channel').value.trim(), event: $('pub-event').value.trim(), data: $('pub-data').value });
    if (r.ok) {
      out.className = 'ok';
      out.textContent = 'Published to ' + r.data.channel + (r.data.serial ? ' (serial ' + r.data.serial + ')' : '');
    } else {
      out.className = 'error';
      out.textContent = r.data.error || ('Failed (' + r.status + ')');
    }
  });

  $('filter-channel').addEventListener('input', onFilter);
  $('filter-event').addEventListener('input', onFilter);
  $('pause').addEventListener('click', () => {
    paused = !paused;
    $('pause').textContent = paused ? 'Resume' : 'Pause';
    if (!paused) renderLog();
  });
  $('clear').addEventListener('click', () => {
    entries = [];
    $('log').replaceChildren();
    $('dropped').textContent = '';
  });

  start();
})();
