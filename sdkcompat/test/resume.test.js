'use strict';
// Issue 15 §1: resume before subscribe. sockudo-js (built from the Sockudo repository; not on
// npm) reconnects like this: on `connected` it runs subscribeAll() — a public channel's
// authorizer answers synchronously, so its sockudo:subscribe goes out at once, while a
// private or presence channel's subscribe waits for the channel-authorization HTTP round
// trip — and then sends sockudo:resume with every stored position right away. So the
// server sees: public subscribe, resume (naming all channels), private/presence subscribes.
// These raw-frame tests replay exactly those frames (JSON.stringify of {event, data}, the
// resume data double-encoded, the subscribe data keys in sockudo-js's order) and keep the
// positions the way sockudo-js does (every frame with channel and serial, the ack included;
// resume_success's recovered positions; resume_failed drops one).

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('../lib/helpers');

const T = { timeout: 20000 };

/** A raw protocol-2 client (h.rawV2) with sockudo-js's URL and recovery bookkeeping. */
async function sockudoJS(t) {
  const positions = new Map();
  const track = (f) => {
    // sockudo.ts: track serial per channel for connection recovery …
    if (f.channel && typeof f.serial === 'number') {
      positions.set(f.channel, { stream_id: f.stream_id, serial: f.serial, last_message_id: f.message_id });
    }
    // … resume_success overwrites with the recovered positions, resume_failed drops one.
    if (f.event === 'sockudo:resume_success') {
      for (const r of JSON.parse(f.data).recovered) if (r.channel && r.position) positions.set(r.channel, r.position);
    }
    if (f.event === 'sockudo:resume_failed') {
      const d = JSON.parse(f.data);
      if (d.channel) positions.delete(d.channel);
    }
  };
  const c = await h.rawV2(t, { version: '1.0.0', onFrame: track });
  return Object.assign(c, {
    positions,
    /** Sends exactly what sockudo-js's Connection.send_event sends for JSON. */
    sendEvent(event, data) {
      c.send(event, data);
    },
    /** sockudo-js Channel.subscribe() after authorization: {auth, channel_data, channel}. */
    subscribe(channel, auth = '', channelData = undefined) {
      c.send('sockudo:subscribe', { auth, channel_data: channelData, channel });
    },
    /** The `connected` handler's resume: every stored position, data double-encoded. */
    resume(stored) {
      const channelPositions = {};
      stored.forEach((p, ch) => {
        channelPositions[ch] = { ...p };
      });
      c.send('sockudo:resume', JSON.stringify({ channel_positions: channelPositions }));
    },
  });
}

/** The channel authorization sockudo-js fetches from the app's auth endpoint. */
function authorize(sdk, socketId, channel, presenceData) {
  return presenceData ? sdk.authorizeChannel(socketId, channel, presenceData) : sdk.authorizeChannel(socketId, channel);
}

/** What the client saw of a channel: its frames, in order, in short form. */
function seq(frames, channel) {
  const out = [];
  for (const f of frames) {
    if (f.channel === channel && f.event === 'tick') out.push(`tick #${f.serial}`);
    else if (f.channel === channel && f.event === 'sockudo_internal:subscription_succeeded') out.push(`ack #${f.serial}`);
    else if (f.event === 'sockudo:resume_success') {
      const d = JSON.parse(f.data);
      if (d.recovered.some((r) => r.channel === channel)) out.push('resume_success');
    } else if (f.channel === channel) out.push(f.event);
  }
  return out;
}

test('sockudo-js reconnect: public subscribe, resume, then the authorized private and presence subscribes', T, async (t) => {
  const sdk = h.serverSDK();
  const pub = h.uniq('orders');
  const priv = h.uniq('private-orders');
  const pres = h.uniq('presence-room');
  const member = JSON.stringify({ user_id: 'u1', user_info: { name: 'Ann' } });
  const channels = [pub, priv, pres];

  // First connection: subscribed to all three, it receives serials 1..2 of each.
  const first = await sockudoJS(t);
  first.subscribe(pub);
  first.subscribe(priv, authorize(sdk, first.socketId, priv).auth);
  const pa = authorize(sdk, first.socketId, pres, { user_id: 'u1', user_info: { name: 'Ann' } });
  first.subscribe(pres, pa.auth, pa.channel_data);
  for (const ch of channels) await first.next((f) => f.event === 'sockudo_internal:subscription_succeeded' && f.channel === ch, `ack ${ch}`);
  for (let i = 0; i < 2; i++) for (const ch of channels) await sdk.trigger(ch, 'tick', { i });
  for (const ch of channels) await first.next((f) => f.channel === ch && f.serial === 2, `serial 2 of ${ch}`);
  const stored = new Map(first.positions);
  for (const ch of channels) assert.equal(stored.get(ch).serial, 2, `${ch} position ${JSON.stringify(stored.get(ch))}`);
  first.ws.terminate(); // the network drops

  // While away: serials 3..5 on each channel.
  for (let i = 2; i < 5; i++) for (const ch of channels) await sdk.trigger(ch, 'tick', { i });

  // Reconnect in sockudo-js's order.
  const c = await sockudoJS(t);
  c.subscribe(pub); // public: the authorizer answers synchronously
  c.resume(stored); // right after subscribeAll(), before any channel authorization returns
  const privAuth = await Promise.resolve(authorize(sdk, c.socketId, priv)); // the auth round trip
  c.subscribe(priv, privAuth.auth);
  const presAuth = await Promise.resolve(authorize(sdk, c.socketId, pres, { user_id: 'u1', user_info: { name: 'Ann' } }));
  c.subscribe(pres, presAuth.auth, presAuth.channel_data);
  assert.equal(presAuth.channel_data, member);

  for (const ch of [priv, pres]) {
    await c.next((f) => f.event === 'sockudo:resume_success' && JSON.parse(f.data).recovered.some((r) => r.channel === ch), `resume_success of ${ch}`);
  }
  // Live messages after the recovery.
  for (const ch of channels) await sdk.trigger(ch, 'tick', { i: 'live' });
  for (const ch of channels) await c.next((f) => f.channel === ch && f.serial === 6, `live serial 6 of ${ch}`);
  await c.quiet();

  // The public channel subscribed before the resume: ack at the head, then the replay.
  assert.deepEqual(seq(c.frames, pub), ['ack #5', 'tick #3', 'tick #4', 'tick #5', 'resume_success', 'tick #6']);
  // The private and presence channels subscribed after it: the replay, then the ack at the
  // head (so a cut anywhere leaves the stored position at a serial actually received), then
  // this channel's resume_success, then live.
  for (const ch of [priv, pres]) {
    assert.deepEqual(seq(c.frames, ch), ['tick #3', 'tick #4', 'tick #5', 'ack #5', 'resume_success', 'tick #6'], ch);
  }
  // No resume_failed, and every channel reported in exactly one resume_success.
  assert.equal(c.frames.filter((f) => f.event === 'sockudo:resume_failed').length, 0);
  const successes = c.frames.filter((f) => f.event === 'sockudo:resume_success').map((f) => JSON.parse(f.data));
  assert.deepEqual(successes.map((d) => d.recovered.map((r) => r.channel)), [[pub], [priv], [pres]]);
  for (const d of successes) {
    assert.deepEqual(d.failed, []);
    const [r] = d.recovered;
    assert.deepEqual(Object.keys(r), ['channel', 'source', 'replayed', 'position']);
    assert.equal(r.source, 'hot');
    assert.equal(r.replayed, 3);
    assert.equal(r.position.serial, 5);
    assert.equal(r.position.stream_id, stored.get(r.channel).stream_id);
    assert.match(r.position.last_message_id, /^[0-9a-f-]{36}$/);
  }
  // The presence ack still carries the members and attach_serial.
  const presAck = c.frames.find((f) => f.channel === pres && f.event === 'sockudo_internal:subscription_succeeded');
  const ackData = JSON.parse(presAck.data);
  assert.equal(ackData.attach_serial, 5);
  assert.deepEqual(ackData.presence.hash, { u1: { name: 'Ann' } });
  // sockudo-js's stored positions end at the live message.
  for (const ch of channels) assert.equal(c.positions.get(ch).serial, 6, ch);
});

test('sockudo-js reconnect: a pending channel whose position cannot be replayed fails after its ack', T, async (t) => {
  const sdk = h.serverSDK();
  const priv = h.uniq('private-reset');
  await sdk.trigger(priv, 'tick', { i: 0 });
  const c = await sockudoJS(t);
  // A position from a stream that no longer exists (e.g. the history was reset meanwhile).
  c.resume(new Map([[priv, { stream_id: '00000000-0000-4000-8000-000000000000', serial: 1, last_message_id: undefined }]]));
  c.subscribe(priv, authorize(sdk, c.socketId, priv).auth);
  const { frame: failed, index } = await c.next((f) => f.event === 'sockudo:resume_failed', 'resume_failed');
  // After the ack: sockudo-js's reaction (drop the position, channel.subscribe()) then finds
  // the channel subscribed and sends nothing.
  assert.equal(c.frames[index - 1].event, 'sockudo_internal:subscription_succeeded');
  assert.equal(failed.channel, priv);
  const d = JSON.parse(failed.data);
  // sockudo-js and sockudo_flutter read the channel from data (Sockudo itself only sets it
  // at frame level, so with Sockudo they never re-subscribe).
  assert.equal(d.channel, priv);
  assert.equal(d.code, 'stream_reset');
  assert.equal(d.reason, 'stream_id_mismatch');
  assert.equal(d.expected_stream_id, '00000000-0000-4000-8000-000000000000');
  const { frame: done } = await c.next((f) => f.event === 'sockudo:resume_success', 'resume_success');
  const sd = JSON.parse(done.data);
  assert.deepEqual(sd.recovered, []);
  assert.equal(sd.failed[0].channel, priv);
  assert.ok(!c.positions.has(priv));
  await c.quiet();
});
