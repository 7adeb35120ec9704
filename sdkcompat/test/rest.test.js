'use strict';
// The REST API through the official `pusher` Node SDK's signed get()/post()/trigger(), with
// channel state produced by real pusher-js clients.

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('../lib/helpers');

const T = { timeout: 20000 };

test('GET /channels lists occupied channels, with filter_by_prefix and user_count', T, async (t) => {
  const sdk = h.serverSDK();
  const tag = h.uniq('rest');
  const pub = `${tag}-public`;
  const room = `presence-${tag}-room`;
  const a = await h.connect(t, { user: { user_id: 'ra', user_info: {} } });
  const b = await h.connect(t, { user: { user_id: 'rb', user_info: {} } });
  await h.subscribe(a, pub);
  await h.subscribe(a, room);
  await h.subscribe(b, room);

  const all = await h.json(sdk.get({ path: '/channels' }));
  assert.ok(all.channels && typeof all.channels === 'object', JSON.stringify(all));
  assert.deepEqual(all.channels[pub], {});
  assert.deepEqual(all.channels[room], {});

  const filtered = await h.json(sdk.get({ path: '/channels', params: { filter_by_prefix: tag } }));
  assert.deepEqual(filtered, { channels: { [pub]: {} } });

  const presence = await h.json(sdk.get({
    path: '/channels',
    params: { filter_by_prefix: `presence-${tag}`, info: 'user_count' },
  }));
  assert.deepEqual(presence, { channels: { [room]: { user_count: 2 } } });
});

test('GET /channels/{name} with info=subscription_count,user_count', T, async (t) => {
  const sdk = h.serverSDK();
  const room = h.uniq('presence-info');
  // Three sockets, two distinct users.
  const a1 = await h.connect(t, { user: { user_id: 'u1', user_info: {} } });
  const a2 = await h.connect(t, { user: { user_id: 'u1', user_info: {} } });
  const b = await h.connect(t, { user: { user_id: 'u2', user_info: {} } });
  for (const c of [a1, a2, b]) await h.subscribe(c, room);

  const info = await h.json(sdk.get({ path: `/channels/${room}`, params: { info: 'subscription_count,user_count' } }));
  assert.deepEqual(info, { occupied: true, subscription_count: 3, user_count: 2 });

  const plain = await h.json(sdk.get({ path: `/channels/${room}` }));
  assert.equal(plain.occupied, true);

  const empty = await h.json(sdk.get({ path: `/channels/${h.uniq('nobody-here')}`, params: { info: 'subscription_count' } }));
  assert.equal(empty.occupied, false);
  assert.ok(empty.subscription_count === undefined || empty.subscription_count === 0, JSON.stringify(empty));
});

test('GET /channels/{presence}/users lists distinct user ids', T, async (t) => {
  const sdk = h.serverSDK();
  const room = h.uniq('presence-users');
  const c1 = await h.connect(t, { user: { user_id: 'x1', user_info: { a: 1 } } });
  const c2 = await h.connect(t, { user: { user_id: 'x2', user_info: {} } });
  const c3 = await h.connect(t, { user: { user_id: 'x1', user_info: { a: 1 } } });
  for (const c of [c1, c2, c3]) await h.subscribe(c, room);
  const res = await h.json(sdk.get({ path: `/channels/${room}/users` }));
  assert.deepEqual(res.users.map((u) => u.id).sort(), ['x1', 'x2']);
  for (const u of res.users) assert.deepEqual(Object.keys(u), ['id']);
});

test('trigger with info=subscription_count,user_count reports counts', T, async (t) => {
  const sdk = h.serverSDK();
  const room = h.uniq('presence-trig');
  const a = await h.connect(t, { user: { user_id: 'p1', user_info: {} } });
  const b = await h.connect(t, { user: { user_id: 'p2', user_info: {} } });
  await h.subscribe(a, room);
  await h.subscribe(b, room);
  const res = await h.json(sdk.trigger(room, 'ev', { x: 1 }, { info: 'subscription_count,user_count' }));
  const entry = res.channels && res.channels[room];
  assert.ok(entry, JSON.stringify(res));
  assert.equal(entry.subscription_count, 2);
  assert.equal(entry.user_count, 2);
});

test('a request signed with the wrong secret gets 401', T, async () => {
  const bad = h.serverSDK({ secret: 'definitely-wrong' });
  await assert.rejects(bad.get({ path: '/channels' }), (err) => {
    assert.equal(err.status, 401, `status ${err.status}: ${err.body}`);
    return true;
  });
  await assert.rejects(bad.trigger(h.uniq('x'), 'ev', {}), (err) => {
    assert.equal(err.status, 401, `status ${err.status}: ${err.body}`);
    return true;
  });
});

test('a request for another app id with valid key signing is refused', T, async () => {
  const wrongApp = h.serverSDK({ appId: 'no-such-app' });
  await assert.rejects(wrongApp.get({ path: '/channels' }), (err) => {
    assert.ok(err.status >= 400 && err.status < 500, `status ${err.status}: ${err.body}`);
    return true;
  });
});
