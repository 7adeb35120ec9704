'use strict';
// Issue 15's REST and V2 operations driven by the official `pusher` Node SDK (its post()/get()
// sign any path, as Sockudo's own server SDKs call these routes), observed by a real pusher-js
// client and by raw protocol-2 WebSocket clients (the `ws` package) sending the frames
// sockudo-js sends: force_reconnect, publish message_id, history state/reset/purge,
// append_rollup_window and message-* capabilities on socket-bound mutations.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const h = require('../lib/helpers');

const T = { timeout: 20000 };

/** A raw protocol-2 client (h.rawV2); query: extra URL parameters. */
const v2 = (t, query = {}) => h.rawV2(t, { query });

/** Subscribes a V2 client to channel (with a rewind, which skips the resume hold). */
async function subscribeV2(c, channel, extra = { rewind: 1 }) {
  c.send('sockudo:subscribe', { channel, ...extra });
  await c.next((f) => f.event === 'sockudo_internal:subscription_succeeded' && f.channel === channel, `subscribed ${channel}`);
  if (extra.rewind) await c.next((f) => f.event === 'sockudo:rewind_complete' && f.channel === channel, 'rewind_complete');
}

/** An HS256 capability token for the app (kid = app key), as a Sockudo backend mints one. */
function capabilityToken(clientId, grants) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT', kid: h.APP_KEY })}.${b64({
    'x-sockudo-capability': JSON.stringify(grants),
    'x-sockudo-client-id': clientId,
    jti: crypto.randomUUID(),
    iat: now,
    nbf: now,
    exp: now + 600,
  })}`;
  return `${body}.${crypto.createHmac('sha256', h.APP_SECRET).update(body).digest('base64url')}`;
}

/** The SDK's post() answer: status and parsed body (errors included). */
async function post(sdk, path, body) {
  try {
    const res = await sdk.post({ path, body });
    return { status: res.status, body: JSON.parse(await res.text()) };
  } catch (err) {
    if (err.status) return { status: err.status, body: JSON.parse(err.body) };
    throw err;
  }
}

/**
 * sockudo-js's versioned-message reducer (reduceMutableMessageEvent): a frame is a mutable
 * message by extras.headers.sockudo_action and sockudo_message_serial; create, update and
 * delete replace the data, append concatenates onto it.
 */
function reduce(state, f) {
  const hd = f.extras && f.extras.headers;
  if (!hd || typeof hd.sockudo_action !== 'string' || typeof hd.sockudo_message_serial !== 'string') return state;
  if (hd.sockudo_action === 'message.append') {
    assert.equal(typeof state, 'string', 'append needs a string base');
    assert.equal(typeof f.data, 'string', 'append fragment is a string');
    return state + f.data;
  }
  return f.data === undefined ? null : f.data;
}

test('force_reconnect: pusher-js gets 4200, reconnects at once and is subscribed again', T, async (t) => {
  const sdk = h.serverSDK();
  const id = h.uniq('frc');
  const room = h.uniq('presence-frc');
  const client = await h.connect(t, { user: { user_id: id } });
  const { channel } = await h.subscribe(client, room);
  const first = client.connection.socket_id;
  const error = h.onceWhere(client.connection, 'error', (e) => e && e.data && e.data.code === 4200, 'pusher:error 4200');
  const resubscribed = h.once(channel, 'pusher:subscription_succeeded', 'subscribed again');
  const res = await post(sdk, `/users/${id}/force_reconnect`, {});
  assert.deepEqual(res, { status: 200, body: { ok: true } });
  await error;
  await resubscribed;
  await h.waitFor(() => client.connection.state === 'connected' && client.connection.socket_id !== first, 'reconnected with a new socket');
  const got = h.once(channel, 'after', 'an event after the reconnect');
  await sdk.trigger(room, 'after', { ok: 1 });
  assert.deepEqual((await got).data, { ok: 1 });
  assert.deepEqual(await h.json(sdk.post({ path: `/users/${h.uniq('nobody')}/force_reconnect`, body: {} })), { ok: true });
});

test('message_id: the frames carry it; a repeat answers the same receipt and delivers nothing', T, async (t) => {
  const sdk = h.serverSDK();
  const ch = h.uniq('mid');
  const c = await v2(t);
  await subscribeV2(c, ch);
  const body = { name: 'order.created', channel: ch, data: JSON.stringify({ id: 7 }), message_id: 'order-7:created' };
  const first = await post(sdk, '/events', body);
  assert.equal(first.status, 200);
  const receipt = first.body.channels[ch];
  assert.ok(receipt.message_serial && receipt.acknowledgement_id === receipt.message_serial, JSON.stringify(first.body));
  const { frame } = await c.next((f) => f.event === 'order.created', 'the event');
  assert.equal(frame.message_id, 'order-7:created');
  assert.equal(frame.serial, receipt.delivery_serial);
  const again = await post(sdk, '/events', body);
  assert.deepEqual(again, first);
  await c.quiet();
  const conflict = await post(sdk, '/events', { ...body, data: 'other' });
  assert.equal(conflict.status, 400);
  assert.match(conflict.body.error, /different payload/);
  const bad = await post(sdk, '/events', { ...body, message_id: 'has space' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, 'invalid_input');
  await c.quiet();
});

test('history state, purge and reset with the bodies of Sockudo\'s server SDKs', T, async (t) => {
  const sdk = h.serverSDK();
  const ch = h.uniq('hist');
  for (let i = 0; i < 5; i++) await sdk.trigger(ch, 'tick', { i });
  const state = await h.json(sdk.get({ path: `/channels/${ch}/history/state` }));
  assert.equal(state.channel, ch);
  assert.equal(state.stream.next_serial, 6);
  assert.equal(state.stream.retained.retained_messages, 5);
  assert.equal(state.stream.state.durable_state, 'healthy');
  const stream = state.stream.stream_id;

  // sockudo-http-python's purge_channel_history(channel, "before_serial", reason, requested_by, before_serial=3)
  const purged = await post(sdk, `/channels/${ch}/history/purge`, {
    confirm_channel: ch, confirm_operation: 'purge', reason: 'retention', requested_by: 'ops', mode: 'before_serial', before_serial: 3,
  });
  assert.equal(purged.status, 200, JSON.stringify(purged.body));
  assert.equal(purged.body.operation, 'purge');
  assert.equal(purged.body.purged_messages, 2);
  assert.equal(purged.body.stream.retained.oldest_available_serial, 3);

  const page = await h.json(sdk.get({ path: `/channels/${ch}/history`, params: { direction: 'oldest_first' } }));
  assert.deepEqual(page.items.map((i) => i.serial), [3, 4, 5]);

  // A V2 client resuming from before the cut gets position_expired, not a purged message.
  const c = await v2(t);
  c.send('sockudo:subscribe', { channel: ch });
  c.send('sockudo:resume', JSON.stringify({ channel_positions: { [ch]: { stream_id: stream, serial: 1 } } }));
  const { frame: failed } = await c.next((f) => f.event === 'sockudo:resume_failed', 'resume_failed');
  assert.equal(JSON.parse(failed.data).code, 'position_expired');

  // reset_channel_history(channel, reason)
  const reset = await post(sdk, `/channels/${ch}/history/reset`, { confirm_channel: ch, confirm_operation: 'reset', reason: 'incident' });
  assert.equal(reset.status, 200, JSON.stringify(reset.body));
  assert.equal(reset.body.previous_stream_id, stream);
  assert.notEqual(reset.body.new_stream_id, stream);
  assert.equal(reset.body.purged_messages, 3);
  assert.equal(reset.body.stream.next_serial, 1);
  const live = c.next((f) => f.event === 'tick', 'a live message after the reset');
  await sdk.trigger(ch, 'tick', { i: 'new' });
  const { frame } = await live;
  assert.equal(frame.stream_id, reset.body.new_stream_id);
  assert.equal(frame.serial, 1);

  const refused = await post(sdk, `/channels/${ch}/history/reset`, { confirm_channel: 'other', confirm_operation: 'reset', reason: 'x' });
  assert.equal(refused.status, 400);
  assert.match(refused.body.error, /confirm_channel/);
});

test('append_rollup_window: the client reduces the rolled-up frames to the server\'s string', T, async (t) => {
  const sdk = h.serverSDK();
  const ch = h.uniq('ai');
  const rolled = await v2(t, { append_rollup_window: '500' });
  await subscribeV2(rolled, ch);
  const created = await h.json(sdk.trigger(ch, 'ai.answer', ''));
  const serial = created.channels[ch].message_serial;
  const path = `/channels/${ch}/messages/${encodeURIComponent(serial)}`;
  const words = ['Once', ' upon', ' a', ' time', ',', ' there', ' was', ' a', ' server', '.'];
  for (const w of words) assert.equal((await post(sdk, `${path}/append`, { data: w })).status, 200);
  const done = await post(sdk, `${path}/append`, { data: '', extras: { ai: { transport: { status: 'complete' } } } });
  assert.equal(done.status, 200);
  let state = null;
  let appends = 0;
  for (let from = 0; ; ) {
    const { frame, index } = await rolled.next((f) => f.channel === ch && f.extras, 'a mutable-message frame', from);
    from = index + 1;
    state = reduce(state, frame);
    if (frame.event === 'sockudo:message.append') appends++;
    if (frame.serial === done.body.delivery_serial) break;
  }
  const item = (await h.json(sdk.get({ path }))).item;
  assert.equal(state, item.data);
  assert.equal(state, words.join(''));
  assert.ok(appends <= words.length + 1, `${appends} append frames for ${words.length + 1} appends`);
  await rolled.quiet();
  const refused = new WebSocket(`ws://${h.HOST}:${h.PORT}/app/${h.APP_KEY}?protocol=2&append_rollup_window=30`);
  const status = await h.withTimeout(new Promise((resolve) => refused.on('unexpected-response', (req, res) => {
    resolve(res.statusCode);
    req.destroy(); // ws leaves the refused request to its listener
  })), 'HTTP refusal');
  assert.equal(status, 400);
});

test('message-* capabilities: a socket-bound update needs message-update-own (its own messages) or -any', T, async (t) => {
  const sdk = h.serverSDK();
  const ch = h.uniq('chat');
  const alice = await v2(t, { token: capabilityToken('alice', { [`${ch}`]: ['subscribe', 'publish', 'history', 'message-update-own'] }) });
  await subscribeV2(alice, ch);
  const bob = await v2(t, { token: capabilityToken('bob', { [`${ch}`]: ['subscribe', 'publish', 'history', 'message_update_own'] }) });
  await subscribeV2(bob, ch);
  const plain = await v2(t);
  await subscribeV2(plain, ch);
  const created = await post(sdk, '/events', { name: 'chat.message', channel: ch, data: 'hi', socket_id: alice.socketId });
  const serial = created.body.channels[ch].message_serial;
  const path = `/channels/${ch}/messages/${encodeURIComponent(serial)}`;
  const ok = await post(sdk, `${path}/update`, { data: 'hi!', socket_id: alice.socketId });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  for (const [who, socket, action] of [['bob', bob.socketId, 'update'], ['alice', alice.socketId, 'delete'], ['no token', plain.socketId, 'update']]) {
    const res = await post(sdk, `${path}/${action}`, { data: 'x', socket_id: socket });
    assert.equal(res.status, 403, `${who} ${action}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.code, 'mutable_not_permitted');
  }
  const privileged = await post(sdk, `${path}/delete`, {});
  assert.equal(privileged.status, 200);
});
