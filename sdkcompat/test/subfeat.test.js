'use strict';
// The subscription features of sockudo-js and sockudo_flutter (issue 15 §3), with the exact
// frames those clients send, over the npm `ws` WebSocket: filter expressions (both forms),
// wildcard subscriptions (the live suite's `wildcard-<uuid>-*`), [meta] metachannels, and the
// algorithm list of sockudo:enable_delta_compression, whose xdelta3 deltas are rebuilt with
// npm @ably/vcdiff-decoder. pusher-js (protocol 7) is refused wildcards on its channel object.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const vcdiff = require('@ably/vcdiff-decoder');
const h = require('../lib/helpers');

const T = { timeout: 20000 };

/** A protocol 2 socket with sockudo-js's URL; frames are parsed and queued. */
async function v2(t) {
  const url = `ws://${h.HOST}:${h.PORT}/app/${h.APP_KEY}?protocol=2&client=js&version=1.0.0&flash=false&format=json`;
  const ws = new WebSocket(url);
  const frames = [];
  const waiters = [];
  ws.on('message', (raw) => {
    const text = raw.toString();
    const f = JSON.parse(text);
    f.raw = text;
    frames.push(f);
    for (const w of waiters.splice(0)) w();
  });
  t.after(() => ws.close());
  const c = {
    ws,
    send: (event, data) => ws.send(JSON.stringify({ event, data })),
    /** The next frame matching pred (frames before it are dropped). */
    next: (pred = () => true, what = 'a frame') => h.withTimeout(new Promise((resolve) => {
      const look = () => {
        while (frames.length) {
          const f = frames.shift();
          if (pred(f)) return resolve(f);
        }
        waiters.push(look);
      };
      look();
    }), what),
    /** Proves nothing else is queued: a ping round trip comes back first. */
    quiet: async () => {
      c.send('sockudo:ping', {});
      const f = await c.next(() => true, 'pong');
      assert.equal(f.event, 'sockudo:pong', `unexpected frame ${f.raw}`);
    },
  };
  await h.withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 'open');
  const hs = await c.next((f) => f.event === 'sockudo:connection_established', 'handshake');
  c.socketId = JSON.parse(hs.data).socket_id;
  return c;
}

/** sockudo-js's subscribe frame for a public channel: {auth:"", channel, filter?}. */
async function subscribe(c, channel, extra = {}) {
  c.send('sockudo:subscribe', { auth: '', channel, ...extra });
  const f = await c.next((x) => x.channel === channel && /subscription_(succeeded|error)$|^sockudo:error$/.test(x.event), `ack of ${channel}`);
  assert.equal(f.event, 'sockudo_internal:subscription_succeeded', f.raw);
}

async function publish(channel, name, data, extra = {}) {
  await h.json(h.serverSDK().trigger(channel, name, data, extra));
}

test('filter expressions as sockudo-js and sockudo_flutter send them', T, async (t) => {
  const ch = h.uniq('sdk-expr');
  const js = await v2(t);
  await subscribe(js, ch, { filter: { expression: "contains(data, 'rush')" } });
  const flutter = await v2(t);
  await subscribe(flutter, ch, { filter: { events: ['order.updated'], expression: { language: 'jmespath', source: "tags.region == 'eu'" } } });
  await h.serverSDK().trigger(ch, 'order.updated', 'slow', { tags: { region: 'eu' } }).then(h.json);
  await h.serverSDK().trigger(ch, 'order.updated', 'rush', { tags: { region: 'us' } }).then(h.json);
  assert.equal((await js.next((f) => f.channel === ch)).data, 'rush');
  assert.equal((await flutter.next((f) => f.channel === ch)).data, 'slow');
  await js.quiet();
  await flutter.quiet();

  // A bad expression: an error frame and a channel-scoped subscription_error; still connected.
  js.send('sockudo:subscribe', { auth: '', channel: ch + '-bad', filter: { expression: 'data.total >=' } });
  const err = await js.next((f) => f.event === 'sockudo:error');
  assert.equal(err.data.code, 4300);
  assert.match(err.data.message, /filter\.expression does not compile/);
  await js.next((f) => f.event === 'sockudo:subscription_error' && f.channel === ch + '-bad');
  await js.quiet();
});

test('wildcard subscription as in the live suite: only matching channels, with their real names', T, async (t) => {
  const id = crypto.randomUUID();
  const c = await v2(t);
  await subscribe(c, `wildcard-${id}-*`);
  await publish(`wildcard-${id}-match`, 'wildcard-event', JSON.stringify({ marker: 'match' }));
  await publish(`other-${id}-miss`, 'wildcard-event', JSON.stringify({ marker: 'miss' }));
  const f = await c.next((x) => x.event === 'wildcard-event');
  assert.equal(f.channel, `wildcard-${id}-match`);
  assert.deepEqual(JSON.parse(f.data), { marker: 'match' });
  await c.quiet();

  // pusher-js (protocol 7) is refused wildcards, on the channel object.
  const client = await h.connect(t);
  const ch = client.subscribe(`wildcard-${id}-*`);
  const { data: e } = await h.once(ch, 'pusher:subscription_error');
  assert.equal(e.type, 'SubscriptionError', JSON.stringify(e));
  assert.match(e.error, /only supported on protocol V2/);
});

test('metachannel lifecycle events as the live suite reads them', T, async (t) => {
  const base = `meta-room-${crypto.randomUUID()}`;
  const meta = await v2(t);
  await subscribe(meta, `[meta]${base}`);
  const member = await v2(t);
  await subscribe(member, base);
  const occupied = await meta.next((f) => f.event === 'sockudo_internal:channel_occupied');
  assert.equal(occupied.channel, `[meta]${base}`);
  assert.deepEqual(occupied.data, { channel: base, subscription_count: 1 });
  const count = await meta.next((f) => f.event === 'sockudo_internal:subscription_count');
  assert.equal(typeof count.data.subscription_count, 'number');
  assert.equal(count.data.channel, base);
  member.ws.close();
  const vacated = await meta.next((f) => f.event === 'sockudo_internal:channel_vacated');
  assert.deepEqual(vacated.data, { channel: base, subscription_count: 0 });
});

test('enable_delta_compression honours the algorithm list; xdelta3 deltas rebuild with @ably/vcdiff-decoder', T, async (t) => {
  const c = await v2(t);
  c.send('sockudo:enable_delta_compression', { algorithms: ['zstd'] });
  const refused = await c.next((f) => f.event === 'sockudo:error');
  assert.equal(refused.data.code, 4000);
  c.send('sockudo:enable_delta_compression', { algorithms: ['xdelta3', 'fossil'] });
  const on = await c.next((f) => f.event === 'sockudo:delta_compression_enabled');
  assert.deepEqual(on.data, { enabled: true, algorithm: 'xdelta3' });

  const ch = h.uniq('sdk-delta');
  await subscribe(c, ch);
  const pad = 'x'.repeat(600);
  // The first message is awaited before the others: a new subscription's first live
  // messages are held back (up to 150 ms, for a resume) and sent as full frames.
  await publish(ch, 'tick', JSON.stringify({ n: 0, pad }));
  const first = await c.next((x) => x.channel === ch && x.event === 'tick');
  let base = first.raw.replace(/,"__delta_seq":\d+(,"__conflation_key":"[^"]*")?\}$/, '}');
  assert.equal(JSON.parse(JSON.parse(base).data).n, 0);
  for (let i = 1; i < 4; i++) {
    await publish(ch, 'tick', JSON.stringify({ n: i, pad }));
  }
  let deltas = 0;
  for (let i = 1; i < 4; i++) {
    const f = await c.next((x) => x.channel === ch && (x.event === 'tick' || x.event === 'sockudo:delta'));
    let text;
    if (f.event === 'sockudo:delta') {
      // Left out: the announced algorithm (xdelta3) is the one the clients fall back to.
      assert.equal(f.data.algorithm, undefined);
      text = Buffer.from(vcdiff.decode(Buffer.from(f.data.delta, 'base64'), Buffer.from(base))).toString();
      deltas++;
    } else {
      text = f.raw.replace(/,"__delta_seq":\d+(,"__conflation_key":"[^"]*")?\}$/, '}');
    }
    // A delta rebuilds the lean target, whose data the clients surface as it is (already
    // decoded); a full frame's data is the JSON string the clients decode.
    const m = JSON.parse(text);
    const data = f.event === 'sockudo:delta' ? m.data : JSON.parse(m.data);
    assert.equal(data.n, i);
    base = text;
  }
  assert.equal(deltas, 3, 'every message after the first is a delta');
});
