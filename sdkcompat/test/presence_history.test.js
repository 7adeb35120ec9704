'use strict';
// Issue 18's presence history: pusher-js clients join and leave a presence channel (and a raw
// protocol-2 client sends sockudo:presence_update, as sockudo-js does), and the official
// `pusher` Node SDK reads GET .../presence/history, .../snapshot, .../state and POSTs
// .../reset with its generic signed get()/post(), as a backend proxying sockudo_flutter's
// PresenceChannel.history() and snapshot() does. The answers are decoded the way
// sockudo_flutter decodes them (_decodePresenceHistoryPage, _decodePresenceSnapshot).

const test = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const h = require('../lib/helpers');

const T = { timeout: 20000 };

/** sockudo_flutter's PresenceHistoryPage decoding: every field it reads, with its fallback. */
function decodePage(p) {
  const num = (v) => (typeof v === 'number' ? v : null);
  return {
    items: (p.items || []).map((it) => ({
      streamId: it.stream_id ?? '',
      serial: num(it.serial) ?? 0,
      publishedAtMs: num(it.published_at_ms) ?? 0,
      event: it.event ?? '',
      cause: it.cause ?? '',
      userId: it.user_id ?? '',
      connectionId: it.connection_id ?? null,
      deadNodeId: it.dead_node_id ?? null,
      payloadSizeBytes: num(it.payload_size_bytes) ?? 0,
      presenceEvent: it.presence_event ?? {},
    })),
    direction: p.direction ?? 'oldest_first',
    limit: num(p.limit) ?? 0,
    hasMore: p.has_more ?? false,
    nextCursor: p.next_cursor ?? null,
    bounds: p.bounds,
    continuity: decodeContinuity(p.continuity),
  };
}

function decodeContinuity(c = {}) {
  return {
    streamId: c.stream_id ?? null,
    oldestAvailableSerial: c.oldest_available_serial ?? null,
    newestAvailableSerial: c.newest_available_serial ?? null,
    retainedEvents: c.retained_events ?? 0,
    retainedBytes: c.retained_bytes ?? 0,
    degraded: c.degraded ?? false,
    complete: c.complete ?? false,
    truncatedByRetention: c.truncated_by_retention ?? false,
  };
}

/** The SDK's get() answer: status and parsed body (errors included). */
async function get(sdk, path, params) {
  try {
    const res = await sdk.get({ path, params });
    return { status: res.status, body: JSON.parse(await res.text()) };
  } catch (err) {
    if (err.status) return { status: err.status, body: JSON.parse(err.body) };
    throw err;
  }
}

/** Every event of channel, oldest first, following next_cursor two at a time. */
async function history(sdk, channel) {
  const items = [];
  let params = { direction: 'oldest_first', limit: 2 };
  for (;;) {
    const { status, body } = await get(sdk, `/channels/${channel}/presence/history`, params);
    assert.equal(status, 200, JSON.stringify(body));
    const page = decodePage(body);
    assert.equal(page.limit, 2);
    items.push(...page.items);
    if (!page.nextCursor) return { items, last: page };
    assert.equal(page.hasMore, true);
    params = { ...params, cursor: page.nextCursor };
  }
}

/** A raw protocol-2 presence member sending sockudo-js's presence_update frame. */
async function v2Member(t, channel, userId) {
  const ws = new WebSocket(`ws://${h.HOST}:${h.PORT}/app/${h.APP_KEY}?protocol=2&client=js&version=9.0.0`);
  t.after(() => ws.terminate());
  const frames = [];
  let wake = () => {};
  ws.on('message', (raw) => { frames.push(JSON.parse(raw.toString())); wake(); });
  const next = (pred, what) => h.waitFor(() => frames.find(pred), what);
  const est = await next((f) => f.event === 'sockudo:connection_established', 'handshake');
  const socketId = JSON.parse(est.data).socket_id;
  const channelData = JSON.stringify({ user_id: userId, user_info: { name: userId } });
  const auth = h.serverSDK().authorizeChannel(socketId, channel, JSON.parse(channelData)).auth;
  ws.send(JSON.stringify({ event: 'sockudo:subscribe', data: { channel, auth, channel_data: channelData } }));
  await next((f) => f.event === 'sockudo_internal:subscription_succeeded', 'subscribed');
  return {
    update(info) { ws.send(JSON.stringify({ event: 'sockudo:presence_update', data: { channel, data: info } })); },
    next,
  };
}

test('presence history: pusher-js joins and leaves, read with the pusher SDK as sockudo_flutter decodes it', T, async (t) => {
  const sdk = h.serverSDK();
  const name = h.uniq('presence-hist');
  const alice = await h.connect(t, { user: { user_id: 'alice', user_info: { name: 'Alice' } } });
  const { channel: chA } = await h.subscribe(alice, name);
  const bob = await h.connect(t, { user: { user_id: 'bob', user_info: { name: 'Bob' } } });
  const added = h.once(chA, 'pusher:member_added', 'member_added bob');
  await h.subscribe(bob, name);
  await added;
  const carol = await v2Member(t, name, 'carol');
  carol.update({ status: 'away' });
  await carol.next((f) => f.event === 'sockudo_internal:presence_update', 'presence_update echo');
  const removed = h.once(chA, 'pusher:member_removed', 'member_removed bob');
  bob.disconnect();
  await removed;

  let got;
  await h.waitFor(async () => { got = await history(sdk, name); return got.items.length >= 5; }, 'five events recorded');
  const lines = got.items.map((it) => `${it.serial} ${it.event} ${it.cause} ${it.userId}`);
  assert.deepEqual(lines, [
    '1 member_added join alice',
    '2 member_added join bob',
    '3 member_added join carol',
    '4 member_updated update carol',
    '5 member_removed disconnect bob',
  ]);
  for (const it of got.items) {
    assert.equal(it.streamId, got.items[0].streamId);
    assert.ok(it.publishedAtMs > 0 && it.payloadSizeBytes > 0 && it.connectionId);
    assert.equal(it.deadNodeId, null);
    assert.equal(it.presenceEvent.serial, it.serial);
    assert.equal(it.presenceEvent.user_id, it.userId);
  }
  assert.deepEqual(got.items[3].presenceEvent.user_info, { status: 'away' });
  assert.deepEqual(got.items[0].presenceEvent.user_info, { name: 'Alice' });
  assert.equal(got.last.continuity.complete, true);
  assert.equal(got.last.continuity.retainedEvents, 5);
  assert.equal(got.last.continuity.truncatedByRetention, false);

  // Snapshots (sockudo_flutter's PresenceSnapshotParams: at_serial, at_time_ms).
  const snap = async (params) => {
    const { status, body } = await get(sdk, `/channels/${name}/presence/history/snapshot`, params);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.member_count, body.members.length);
    return body;
  };
  assert.deepEqual((await snap({ at_serial: 2 })).members.map((m) => m.user_id), ['alice', 'bob']);
  const latest = await snap({});
  assert.deepEqual(latest.members.map((m) => m.user_id), ['alice', 'carol']);
  assert.deepEqual(latest.members[1], { user_id: 'carol', last_event: 'member_updated', last_event_serial: 4, last_event_at_ms: got.items[3].publishedAtMs });
  assert.equal(latest.snapshot_serial, 5);
  assert.equal(latest.events_replayed, 5);
  const byTime = await snap({ at_time_ms: got.items[0].publishedAtMs });
  assert.ok(byTime.members.some((m) => m.user_id === 'alice'));

  // State and reset.
  const state = await get(sdk, `/channels/${name}/presence/history/state`);
  assert.equal(state.status, 200);
  assert.equal(state.body.stream.next_serial, 6);
  assert.equal(state.body.stream.retained.retained_events, 5);
  assert.equal(state.body.stream.state.durable_state, 'healthy');
  const res = await sdk.post({ path: `/channels/${name}/presence/history/reset`,
    body: { confirm_channel: name, confirm_operation: 'reset', reason: 'sdkcompat' } });
  const reset = JSON.parse(await res.text());
  assert.equal(reset.ok, true);
  assert.equal(reset.purged_events, 5);
  assert.notEqual(reset.new_stream_id, reset.previous_stream_id);
  const after = await get(sdk, `/channels/${name}/presence/history`, {});
  assert.equal(after.body.items.length, 0);
  assert.equal(after.body.continuity.stream_id, reset.new_stream_id);
});

test('presence history: refusals in the error envelope', T, async () => {
  const sdk = h.serverSDK();
  const a = h.uniq('presence-ref-a');
  const b = h.uniq('presence-ref-b');
  const notPresence = await get(sdk, `/channels/${h.uniq('private-x')}/presence/history`, {});
  assert.equal(notPresence.status, 400);
  assert.equal(notPresence.body.code, 'invalid_input');
  const page = await get(sdk, `/channels/${a}/presence/history`, { limit: 1 });
  assert.equal(page.status, 200);
  const forged = Buffer.from(JSON.stringify({ version: 1, app_id: h.APP_ID, channel: `presence-history:${b}`, stream_id: 'x', serial: 1,
    direction: 'newest_first', bounds: {}, sig: 'AAAA' })).toString('base64url');
  const wrong = await get(sdk, `/channels/${b}/presence/history`, { cursor: forged });
  assert.equal(wrong.status, 400);
  const badSerial = await get(sdk, `/channels/${a}/presence/history/snapshot`, { at_serial: 'x' });
  assert.equal(badSerial.status, 400);
});
