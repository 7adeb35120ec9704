'use strict';
// Delta-compressed V2 streams end to end (issue 19), JSON format, over raw `ws` sockets:
// every frame a delta subscriber receives is rebuilt by the rules sockudo-js and
// sockudo_flutter follow (reproduced here from reading core/delta/manager.ts, sockudo.ts and
// delta_compression.dart; no client code is used) and decoded by the independent decoders:
// npm fossil-delta (checksum verified), npm @ably/vcdiff-decoder and Debian's `xdelta3 -d`.
// Each text a full frame leaves must be byte for byte the frame a subscriber without deltas
// received; each text a delta rebuilds must be the lean target pushwire defines for it
// ({"event","channel","data"}), from which both clients surface the data they surface from
// the plain frame.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const WebSocket = require('ws');
const fossil = require('fossil-delta');
const vcdiff = require('@ably/vcdiff-decoder');
const h = require('../lib/helpers.js');

const T = { timeout: 60000 };

/** A raw V2 JSON connection keeping every frame's text. */
class JsonClient {
  static async open(t) {
    const c = new JsonClient();
    c.ws = new WebSocket(`ws://${h.HOST}:${h.PORT}/app/${h.APP_KEY}?protocol=2&client=js&version=1.0.0&format=json`);
    t.after(() => c.ws.terminate());
    c.ws.on('message', (buf) => {
      const text = buf.toString();
      c.frames.push({ text, f: JSON.parse(text) });
      for (const w of c.waiters.splice(0)) w();
    });
    await c.next((x) => x.f.event === 'sockudo:connection_established', 'connection_established');
    return c;
  }

  constructor() {
    this.frames = [];
    this.waiters = [];
    this.seen = 0;
  }

  send(event, data) {
    this.ws.send(JSON.stringify({ event, data }));
  }

  async next(pred, what) {
    const deadline = Date.now() + h.WAIT_MS;
    for (;;) {
      while (this.seen < this.frames.length) {
        const x = this.frames[this.seen++];
        if (pred(x)) return x;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async subscribe(channel, extra = {}) {
    this.send('sockudo:subscribe', { channel, ...extra });
    return this.next((x) => x.f.event === 'sockudo_internal:subscription_succeeded' && x.f.channel === channel, `ack of ${channel}`);
  }

  /** The first n frames of channel that are messages (full or sockudo:delta), once they came. */
  async messages(channel, n) {
    const mine = () => this.frames.filter((x) => x.f.channel === channel && !x.f.event.startsWith('sockudo_internal:') &&
      (x.f.event === 'sockudo:delta' || !x.f.event.startsWith('sockudo:')));
    const deadline = Date.now() + h.WAIT_MS;
    while (mine().length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} messages of ${channel}, got ${mine().length}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return mine().slice(0, n);
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pushwire-delta-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let xdeltaRuns = 0;

/** Decodes a VCDIFF delta with xdelta3 -d (source = base) and returns the text. */
function xdelta3Decode(base, delta) {
  const id = xdeltaRuns++;
  const b = path.join(tmp, `${id}.base`);
  const d = path.join(tmp, `${id}.vcdiff`);
  const o = path.join(tmp, `${id}.out`);
  fs.writeFileSync(b, base);
  fs.writeFileSync(d, delta);
  execFileSync('xdelta3', ['-d', '-f', '-s', b, d, o]);
  return fs.readFileSync(o).toString();
}

/**
 * The clients' delta state of one connection: the default algorithm (fossil until a
 * delta_compression_enabled names one) and, per channel, the single base (no conflation on
 * these channels).
 */
class ClientModel {
  constructor() {
    this.algorithm = 'fossil';
    this.base = new Map();
    this.deltas = 0;
    this.fulls = 0;
    this.decoders = { fossil: 0, vcdiff: 0, xdelta3: 0 };
  }

  /** Feeds one frame; returns the rebuilt message text for message frames. */
  read({ text, f }) {
    this.lastDelta = f.event === 'sockudo:delta';
    if (f.event === 'sockudo:delta_compression_enabled') {
      if (f.data.algorithm) this.algorithm = f.data.algorithm;
      return undefined;
    }
    if (f.event !== 'sockudo:delta') {
      if (typeof f.__delta_seq === 'number') {
        this.base.set(f.channel, text.replace(/,"__delta_seq":\d+/g, '').replace(/"__delta_seq":\d+,/g, '')
          .replace(/,"__conflation_key":"[^"]*"/g, '').replace(/"__conflation_key":"[^"]*",/g, ''));
        this.fulls++;
        return this.base.get(f.channel);
      }
      return text; // no marker: the clients keep their base
    }
    const d = f.data;
    assert.equal(typeof d.event, 'string', 'sockudo_flutter drops a delta without event');
    assert.equal(typeof d.seq, 'number', 'sockudo_flutter drops a delta without seq');
    const base = this.base.get(f.channel);
    assert.ok(base, `a delta without a base on ${f.channel}`);
    const alg = d.algorithm || this.algorithm;
    const patch = Buffer.from(d.delta, 'base64');
    let out;
    if (alg === 'fossil') {
      out = Buffer.from(fossil.applyDelta(Buffer.from(base), patch)).toString();
      this.decoders.fossil++;
    } else {
      assert.equal(alg, 'xdelta3');
      out = Buffer.from(vcdiff.decode(new Uint8Array(patch), new Uint8Array(Buffer.from(base)))).toString();
      assert.equal(xdelta3Decode(base, patch), out, 'xdelta3 -d and @ably/vcdiff-decoder agree');
      this.decoders.vcdiff++;
      this.decoders.xdelta3++;
    }
    this.base.set(f.channel, out);
    this.deltas++;
    return out;
  }
}

/**
 * The text the frame model read last must rebuild to when a plain subscriber received plain:
 * plain itself for a full frame, its lean target for a delta (whose data both clients must
 * surface as they do the plain frame's).
 */
function expectRebuilt(model, rebuilt, plain) {
  if (!model.lastDelta) return assert.equal(rebuilt, plain);
  assert.equal(rebuilt, h.leanTarget(plain));
  assert.deepEqual(h.deltaData(rebuilt), h.plainData(plain), 'sockudo-js surfaces the plain frame\'s data');
  assert.deepEqual(h.flutterDeltaData(rebuilt), h.plainData(plain), 'sockudo_flutter surfaces the plain frame\'s data');
}

/** The issue-19 price tick stream: ~200-byte ticks whose price fields move a little. */
function* ticks(seed) {
  let s = seed;
  const rnd = (n) => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % n;
  };
  let price = 67012.25;
  let vol = 18234.118;
  let ts = 1765000000000;
  for (;;) {
    price += (rnd(401) - 200) / 100;
    const spread = (1 + rnd(20)) / 100;
    vol += rnd(5000) / 10000;
    ts += 100 + rnd(900);
    yield JSON.stringify({
      symbol: 'BTC-USD', price: price.toFixed(2), bid: (price - spread / 2).toFixed(2), ask: (price + spread / 2).toFixed(2),
      volume_24h: vol.toFixed(4), change_24h_pct: (((price - 66120.5) / 66120.5) * 100).toFixed(3), exchange: 'coinbase', ts,
    });
  }
}

const msgIdPrefix = (text) => JSON.parse(text).message_id.slice(0, 28);

for (const algorithm of ['fossil', 'xdelta3']) {
  test(`json ${algorithm}: every frame of a price-tick stream rebuilds to the lean target of the plain subscriber's frame`, T, async (t) => {
    const channel = h.uniq('ticker');
    const plain = await JsonClient.open(t);
    await plain.subscribe(channel);
    const c = await JsonClient.open(t);
    const model = new ClientModel();
    c.send('sockudo:enable_delta_compression', { algorithms: [algorithm] });
    model.read(await c.next((x) => x.f.event === 'sockudo:delta_compression_enabled', 'delta_compression_enabled'));
    assert.equal(model.algorithm, algorithm);
    await c.subscribe(channel);
    const sent = [];
    const gen = ticks(7);
    const n = 60;
    // The first message is awaited before the others: a new subscription's first live
    // messages are held back (up to 150 ms, for a resume) and sent as full frames.
    for (let i = 0; i < n; i++) {
      const data = gen.next().value;
      sent.push(data);
      await h.serverSDK().trigger(channel, 'tick', JSON.parse(data));
      if (i === 0) await c.messages(channel, 1);
    }
    const want = await plain.messages(channel, n);
    const got = await c.messages(channel, n);
    let plainBytes = 0;
    let deltaBytes = 0;
    for (let i = 0; i < n; i++) {
      const rebuilt = model.read(got[i]);
      assert.equal(JSON.parse(want[i].text).data, sent[i], `message ${i}: plain data`);
      if (got[i].f.event === 'sockudo:delta') {
        // A delta rebuilds the lean target: event, channel and the tick as JSON, from which
        // both clients surface what their plain path surfaces (the decoded tick).
        assert.equal(rebuilt, h.leanTarget(want[i].text), `message ${i}: rebuilt text`);
        assert.deepEqual(h.deltaData(rebuilt), h.plainData(want[i].text), `message ${i}: sockudo-js data`);
        assert.deepEqual(h.flutterDeltaData(rebuilt), h.plainData(want[i].text), `message ${i}: sockudo_flutter data`);
        assert.deepEqual(h.deltaData(rebuilt), JSON.parse(sent[i]), `message ${i}: data`);
        assert.equal(got[i].f.data.event, 'tick');
        // The leanest envelope both clients accept: no algorithm (announced), no base_index.
        assert.deepEqual(Object.keys(got[i].f.data), ['event', 'delta', 'seq'], `message ${i}: delta members`);
        assert.equal(got[i].f.data.seq, i);
      } else {
        assert.equal(rebuilt, want[i].text, `message ${i}: full frame text`);
      }
      if (i > 0) assert.equal(msgIdPrefix(want[i].text), msgIdPrefix(want[i - 1].text), 'consecutive message_ids share their prefix');
      plainBytes += Buffer.byteLength(want[i].text);
      deltaBytes += Buffer.byteLength(got[i].text);
    }
    // Message 0 was held (full); message 1 may go out full too when its fan-out races with
    // the end of the hold (sent full rather than ahead of the held frame); then deltas only.
    for (let i = 2; i < n; i++) assert.equal(got[i].f.event, 'sockudo:delta', `message ${i} is a delta`);
    assert.ok(model.fulls <= 2, `${model.fulls} full frames`);
    assert.equal(model.deltas + model.fulls, n);
    const saved = 100 * (1 - deltaBytes / plainBytes);
    t.diagnostic(`${algorithm}: ${plainBytes} bytes without deltas, ${deltaBytes} with (${saved.toFixed(1)}% saved)`);
    assert.ok(saved > 60, `saved ${saved.toFixed(1)}%`);
  });
}

test('json: a delta names its algorithm again once another one was announced', T, async (t) => {
  const a = h.uniq('ticker-a');
  const b = h.uniq('ticker-b');
  const plain = await JsonClient.open(t);
  await plain.subscribe(a);
  await plain.subscribe(b);
  const c = await JsonClient.open(t);
  await c.subscribe(a, { delta: 'fossil' });
  const gen = ticks(11);
  const publish = async (channel) => h.serverSDK().trigger(channel, 'tick', JSON.parse(gen.next().value));
  // Each channel's first message is awaited: the first live messages of a subscription are
  // held back (up to 150 ms, for a resume) and sent as full frames.
  await publish(a);
  await c.messages(a, 1);
  for (let i = 0; i < 2; i++) await publish(a);
  await c.messages(a, 3);
  await c.subscribe(b, { delta: 'xdelta3' }); // the clients' default becomes xdelta3
  await publish(b);
  await c.messages(b, 1);
  for (let i = 0; i < 3; i++) {
    await publish(a);
    if (i > 0) await publish(b);
  }
  await c.messages(a, 6);
  await c.messages(b, 3);
  const wantA = await plain.messages(a, 6);
  const wantB = await plain.messages(b, 3);
  // Replay the connection's frames in arrival order through one client model.
  const model = new ClientModel();
  const rebuilt = { [a]: [], [b]: [] };
  for (const x of c.frames) {
    if (x.f.event === 'sockudo:delta_compression_enabled') model.read(x);
    else if (x.f.channel in rebuilt && (x.f.event === 'tick' || x.f.event === 'sockudo:delta')) {
      if (x.f.event === 'sockudo:delta') {
        const announcedXdelta = model.algorithm === 'xdelta3';
        if (x.f.channel === a && announcedXdelta) assert.equal(x.f.data.algorithm, 'fossil', 'fossil named after the xdelta3 announcement');
        if (x.f.channel === b) assert.equal(x.f.data.algorithm, undefined, 'the announced algorithm is implied');
      }
      rebuilt[x.f.channel].push({ text: model.read(x), delta: model.lastDelta });
    }
  }
  for (const [got, want] of [[rebuilt[a], wantA], [rebuilt[b], wantB]]) {
    assert.equal(got.length, want.length);
    got.forEach((r, i) => expectRebuilt({ lastDelta: r.delta }, r.text, want[i].text));
  }
  assert.equal(model.decoders.fossil, 5);
  assert.equal(model.decoders.xdelta3, 2);
});

test('json: after delta_sync_error the next message is full from sequence 0', T, async (t) => {
  const channel = h.uniq('ticker');
  const plain = await JsonClient.open(t);
  await plain.subscribe(channel);
  const c = await JsonClient.open(t);
  await c.subscribe(channel, { delta: true });
  const gen = ticks(5);
  await h.serverSDK().trigger(channel, 'tick', JSON.parse(gen.next().value));
  await c.messages(channel, 1); // past the hold of the first live messages
  for (let i = 0; i < 2; i++) await h.serverSDK().trigger(channel, 'tick', JSON.parse(gen.next().value));
  const first = await c.messages(channel, 3);
  assert.deepEqual(first.map((x) => x.f.event), ['tick', 'sockudo:delta', 'sockudo:delta']);
  // As the clients do when they have no base: ask for a resync, drop the local state.
  c.send('sockudo:delta_sync_error', { channel });
  c.send('sockudo:ping', {}); // answered after the sync error is handled: same socket, in order
  await c.next((x) => x.f.event === 'sockudo:pong', 'pong');
  await h.serverSDK().trigger(channel, 'tick', JSON.parse(gen.next().value));
  await h.serverSDK().trigger(channel, 'tick', JSON.parse(gen.next().value));
  const [full, next] = (await c.messages(channel, 5)).slice(3);
  assert.equal(full.f.__delta_seq, 0);
  const model = new ClientModel();
  const want = await plain.messages(channel, 5);
  assert.equal(model.read(full), want[3].text);
  assert.equal(model.lastDelta, false);
  expectRebuilt(model, model.read(next), want[4].text);
  assert.equal(model.lastDelta, true);
});
