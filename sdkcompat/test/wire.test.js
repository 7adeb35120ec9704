'use strict';
// Protocol V2 binary wire formats (format=messagepack | protobuf) against pushwire, seen
// through independent npm decoders: @msgpack/msgpack and protobufjs (loading pushwire's
// checked-in .proto files AND, separately, schemas written in this file from the field
// numbers sockudo-js and sockudo_flutter declare), over raw sockets from the `ws` package.
// Each format connects, subscribes, receives HTTP publishes, presence, delta-compressed
// messages (rebuilt with fossil-delta over the text the real client keeps), rewind and
// channel_history frames, and error frames for bad input, and every content is checked.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const WebSocket = require('ws');
const { encode: mpEncode, decode: mpDecode } = require('@msgpack/msgpack');
const protobuf = require('protobufjs');
const fossil = require('fossil-delta');
const vcdiff = require('@ably/vcdiff-decoder');
const h = require('../lib/helpers.js');

const T = { timeout: 30000 };

// pushwire's checked-in schemas.
const wireDir = path.join(__dirname, '..', '..', 'protocol', 'wirepb');
const ours = protobuf.loadSync([path.join(wireDir, 'envelope.proto'), path.join(wireDir, 'flutter.proto')]);
const OurEnvelope = ours.lookupType('pushwire.wire.Envelope');
const OurFlutterEnvelope = ours.lookupType('pushwire.wire.FlutterEnvelope');

// The same layouts written here from the clients' field numbers (sockudo-js builds its
// schema by reflection with these numbers; sockudo_flutter's wire.proto numbers 10-15
// differently). Nothing is shared with the files above.
const clientSchemas = protobuf.parse(`
syntax = "proto3";
package clients;
message Data { oneof kind { string string_value = 1; Structured structured = 2; string json_value = 3; bytes binary_value = 4; } }
message Structured { string channel_data = 1; string channel = 2; string user_data = 3; map<string, string> extra = 4; }
message Value { oneof kind { string string_value = 1; double number_value = 2; bool bool_value = 3; } }
message Ai { map<string, string> transport = 1; map<string, string> codec = 2; }
message Extras { map<string, Value> headers = 1; optional bool ephemeral = 2; optional string idempotency_key = 3; optional bool echo = 4; Ai ai = 5; }
message JsEnvelope {
  optional string event = 1; optional string channel = 2; Data data = 3; optional string name = 4; optional string user_id = 5;
  map<string, string> tags = 6; optional uint64 sequence = 7; optional string conflation_key = 8; optional string message_id = 9;
  optional string stream_id = 10; optional uint64 serial = 11; optional string idempotency_key = 12; Extras extras = 13;
  optional uint64 delta_sequence = 14; optional string delta_conflation_key = 15;
}
message FlutterEnvelope {
  string event = 1; string channel = 2; Data data = 3; string name = 4; string user_id = 5; map<string, string> tags = 6;
  uint64 sequence = 7; string conflation_key = 8; string message_id = 9; uint64 serial = 10; string idempotency_key = 11;
  Extras extras = 12; uint64 delta_sequence = 13; string delta_conflation_key = 14; string stream_id = 15;
}
`).root;
const JsEnvelope = clientSchemas.lookupType('clients.JsEnvelope');
const FlutterEnvelope = clientSchemas.lookupType('clients.FlutterEnvelope');

const MP_FIELDS = ['event', 'channel', 'data', 'name', 'user_id', 'tags', 'sequence', 'conflation_key',
  'message_id', 'stream_id', 'serial', 'idempotency_key', 'extras', '__delta_seq', '__conflation_key'];

/** A number when safe, else its decimal string (how both clients normalise serials). */
function serial(v) {
  if (v === undefined || v === null) return undefined;
  const b = BigInt(typeof v === 'object' ? v.toString() : v);
  return b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b.toString();
}

/** MessagePack values as sockudo-js keeps them: tagged pairs collapse to their payload. */
function untag(v) {
  if (typeof v === 'bigint') return serial(v);
  if (Array.isArray(v)) {
    if (v.length === 2 && typeof v[0] === 'string') {
      if (['string', 'json', 'bool', 'binary'].includes(v[0])) return v[1];
      if (v[0] === 'number' || v[0] === 'structured') return untag(v[1]);
    }
    return v.map(untag);
  }
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, untag(x)]));
  }
  return v;
}

function protoExtras(x, flutter) {
  if (!x) return undefined;
  const out = {};
  if (x.headers && Object.keys(x.headers).length) {
    out.headers = Object.fromEntries(Object.entries(x.headers).map(([k, v]) =>
      [k, v.numberValue !== undefined ? v.numberValue : v.boolValue !== undefined ? v.boolValue : v.stringValue]));
  }
  for (const [k, n] of [['ephemeral', 'ephemeral'], ['idempotency_key', 'idempotencyKey'], ['echo', 'echo']]) {
    if (x[n] !== undefined) out[k] = x[n];
  }
  if (x.ai) out.ai = { ...(x.ai.transport ? { transport: x.ai.transport } : {}), ...(x.ai.codec ? { codec: x.ai.codec } : {}) };
  return out;
}

/**
 * Dart's jsonEncode for an envelope decoded from protobuf by sockudo_flutter: like
 * JSON.stringify, except that header numbers are doubles (number_value), which Dart writes
 * with ".0" when integral.
 */
function dartStringify(v, inHeaders = false) {
  if (typeof v === 'number' && inHeaders && Number.isInteger(v) && Math.abs(v) < 1e21) return `${v}.0`;
  if (Array.isArray(v)) return `[${v.map((x) => dartStringify(x)).join(',')}]`;
  if (v && typeof v === 'object') {
    const parts = Object.entries(v).filter(([, x]) => x !== undefined)
      .map(([k, x]) => `${JSON.stringify(k)}:${dartStringify(x, k === 'headers' ? 'next' : inHeaders === 'next')}`);
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * The formats under test. decode(buf) returns { env, text, raw }: env is the envelope as
 * the real client keeps it (member order included), text its JSON the client stores as a
 * delta base, raw what the npm decoder gave.
 */
const formats = {
  messagepack: {
    query: 'format=messagepack&client=js',
    decode(buf) {
      const raw = mpDecode(buf, { useBigInt64: true });
      assert.ok(Array.isArray(raw), 'a MessagePack frame is the positional array');
      assert.equal(raw.length, 15);
      const env = {};
      MP_FIELDS.forEach((f, i) => {
        if (raw[i] !== null && raw[i] !== undefined) env[f] = untag(raw[i]);
      });
      return { env, text: JSON.stringify(env), raw };
    },
    encode(event, data, channel) {
      const d = data === undefined ? null : typeof data === 'string' ? ['string', data] : ['json', JSON.stringify(data)];
      return mpEncode([event, channel ?? null, d, null, null, null, null, null, null, null, null, null, null, null, null]);
    },
  },
  protobuf: {
    query: 'format=protobuf&client=js',
    decode(buf) {
      const msg = OurEnvelope.decode(buf);
      const raw = OurEnvelope.toObject(msg, { longs: String, oneofs: false });
      // The client-numbered schema must read the same frame the same way.
      const mine = JsEnvelope.toObject(JsEnvelope.decode(buf), { longs: String });
      assert.deepEqual(mine, raw, 'sockudo-js field numbers and envelope.proto agree');
      const env = {
        event: raw.event, channel: raw.channel, user_id: raw.userId, stream_id: raw.streamId,
        serial: serial(raw.serial), message_id: raw.messageId, __delta_seq: serial(raw.deltaSequence),
        __conflation_key: raw.deltaConflationKey, extras: protoExtras(raw.extras),
      };
      if (raw.data?.stringValue !== undefined) env.data = raw.data.stringValue;
      else if (raw.data?.jsonValue !== undefined) env.data = JSON.parse(raw.data.jsonValue);
      return { env, text: JSON.stringify(env), raw };
    },
    encode(event, data, channel) {
      const m = { event, channel };
      if (data !== undefined) m.data = typeof data === 'string' ? { stringValue: data } : { jsonValue: JSON.stringify(data) };
      return OurEnvelope.encode(OurEnvelope.fromObject(m)).finish();
    },
  },
  'protobuf (client=flutter)': {
    query: 'format=protobuf&client=flutter',
    decode(buf) {
      const raw = OurFlutterEnvelope.toObject(OurFlutterEnvelope.decode(buf), { longs: String });
      const mine = FlutterEnvelope.toObject(FlutterEnvelope.decode(buf), { longs: String });
      assert.deepEqual(mine, raw, "sockudo_flutter's wire.proto numbers and flutter.proto agree");
      // sockudo_flutter's member order and number formatting.
      const env = {
        event: raw.event, channel: raw.channel, user_id: raw.userId, message_id: raw.messageId,
        stream_id: raw.streamId, serial: serial(raw.serial), __delta_seq: serial(raw.deltaSequence),
        __conflation_key: raw.deltaConflationKey,
      };
      if (raw.data?.stringValue !== undefined) env.data = raw.data.stringValue;
      else if (raw.data?.jsonValue !== undefined) env.data = JSON.parse(raw.data.jsonValue);
      const x = protoExtras(raw.extras);
      if (x) env.extras = x;
      return { env, text: dartStringify(env), raw };
    },
    encode(event, data, channel) {
      const m = { event, channel };
      if (data !== undefined) m.data = typeof data === 'string' ? { stringValue: data } : { jsonValue: JSON.stringify(data) };
      return FlutterEnvelope.encode(FlutterEnvelope.fromObject(m)).finish();
    },
  },
};

/** Parses an envelope's data the way the clients hand it to the app. */
function payload(env) {
  if (typeof env.data !== 'string') return env.data;
  try {
    return JSON.parse(env.data);
  } catch {
    return env.data;
  }
}

/** A raw V2 connection in one binary format. Every frame it gets must be binary. */
class BinClient {
  static async open(t, fmt) {
    const c = new BinClient(fmt);
    const url = `ws://${h.HOST}:${h.PORT}/app/${h.APP_KEY}?protocol=2&version=1.0.0&flash=false&${formats[fmt].query}`;
    c.ws = new WebSocket(url);
    t.after(() => c.ws.terminate());
    c.ws.on('message', (buf, isBinary) => {
      if (!isBinary) {
        c.errors.push(new Error(`text frame on a ${fmt} connection: ${buf}`));
        return;
      }
      try {
        c.frames.push(formats[fmt].decode(buf));
      } catch (e) {
        c.errors.push(e);
      }
      c.wake();
    });
    const hello = await c.next((f) => f.env.event === 'sockudo:connection_established', 'connection_established');
    c.socketId = payload(hello.env).socket_id;
    assert.match(c.socketId, /^\d+\.\d+$/);
    assert.ok(payload(hello.env).activity_timeout > 0);
    return c;
  }

  constructor(fmt) {
    this.fmt = fmt;
    this.frames = [];
    this.errors = [];
    this.waiters = [];
    this.seen = 0;
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  send(event, data, channel) {
    this.ws.send(formats[this.fmt].encode(event, data, channel), { binary: true });
  }

  /** Resolves with the next frame (after those already taken) that satisfies pred. */
  async next(pred, what) {
    const deadline = Date.now() + h.WAIT_MS;
    for (;;) {
      if (this.errors.length) throw this.errors[0];
      while (this.seen < this.frames.length) {
        const f = this.frames[this.seen++];
        if (pred(f)) return f;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what} on ${this.fmt}; got ${this.frames.map((f) => f.text).join('\n')}`);
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
    this.send('sockudo:subscribe', { channel, auth: '', ...extra });
    return this.next((f) => f.env.event === 'sockudo_internal:subscription_succeeded' && f.env.channel === channel, `ack of ${channel}`);
  }
}

// Server message ids: UUIDv8, a per-channel random prefix and a counter (issue 19).
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

for (const fmt of Object.keys(formats)) {
  test(`${fmt}: publishes arrive with their exact envelope`, T, async (t) => {
    const c = await BinClient.open(t, fmt);
    const channel = h.uniq('orders');
    const ack = await c.subscribe(channel);
    assert.deepEqual(payload(ack.env), { attach_serial: 0 });
    await h.serverSDK().trigger(channel, 'order.created', { id: 'ord_1', note: 'héllo "quoted" \n🚀' });
    const ev = await c.next((f) => f.env.event === 'order.created', 'order.created');
    assert.equal(ev.env.channel, channel);
    assert.equal(ev.env.data, JSON.stringify({ id: 'ord_1', note: 'héllo "quoted" \n🚀' }));
    assert.equal(ev.env.serial, 1);
    assert.match(ev.env.message_id, uuid);
    assert.equal(typeof ev.env.stream_id, 'string');
    if (fmt === 'messagepack') assert.deepEqual(ev.raw[2], ['string', ev.env.data]);
    else assert.equal(ev.raw.data.stringValue, ev.env.data);
  });

  test(`${fmt}: presence acks and member events`, T, async (t) => {
    const channel = h.uniq('presence-room');
    const signer = h.serverSDK();
    const join = async (userId, name) => {
      const c = await BinClient.open(t, fmt);
      const a = signer.authorizeChannel(c.socketId, channel, { user_id: userId, user_info: { name } });
      c.send('sockudo:subscribe', { channel, auth: a.auth, channel_data: a.channel_data });
      const ack = await c.next((f) => f.env.event === 'sockudo_internal:subscription_succeeded', 'presence ack');
      return { c, ack };
    };
    const a = await join('u1', 'Ann');
    assert.deepEqual(payload(a.ack.env).presence, { ids: ['u1'], hash: { u1: { name: 'Ann' } }, count: 1 });
    const b = await join('u2', 'Bob');
    assert.deepEqual(payload(b.ack.env).presence.ids, ['u1', 'u2']);
    const added = await a.c.next((f) => f.env.event === 'sockudo_internal:member_added', 'member_added');
    assert.equal(added.env.channel, channel);
    assert.deepEqual(payload(added.env), { user_id: 'u2', user_info: { name: 'Bob' } });
    b.c.ws.close();
    const removed = await a.c.next((f) => f.env.event === 'sockudo_internal:member_removed', 'member_removed');
    assert.deepEqual(payload(removed.env), { user_id: 'u2' });
  });

  for (const algorithm of ['fossil', 'xdelta3']) {
    test(`${fmt}: ${algorithm} delta frames rebuild, byte for byte, the lean text the server defines`, T, async (t) => {
      const c = await BinClient.open(t, fmt);
      c.send('sockudo:enable_delta_compression', { algorithms: [algorithm] });
      const enabled = await c.next((f) => f.env.event === 'sockudo:delta_compression_enabled', 'delta_compression_enabled');
      assert.deepEqual(payload(enabled.env), { enabled: true, algorithm });
      const channel = h.uniq('ticker');
      await c.subscribe(channel);
      // The same format without deltas: the text its client keeps for each message is what
      // the delta subscriber's client must rebuild.
      const plain = await BinClient.open(t, fmt);
      await plain.subscribe(channel);
      // A first message, awaited: a new subscription's first live messages are held back
      // (up to 150 ms, for a resume) and sent as full frames.
      await h.serverSDK().trigger(channel, 'price.update', { symbol: 'BTC-USD', price: '66999.00', ts: 1765000000000 });
      let base;
      {
        const f = await c.next((x) => x.env.channel === channel && x.env.event === 'price.update', 'first message');
        base = f.text.replace(/,"__delta_seq":\d+/g, '').replace(/"__delta_seq":\d+,/g, '');
        const p = await plain.next((x) => x.env.channel === channel && x.env.event === 'price.update', 'first message');
        assert.equal(base, p.text);
      }
      const sent = [];
      for (let i = 0; i < 12; i++) {
        const d = {
          symbol: 'BTC-USD', price: (67000 + i * 1.37).toFixed(2), bid: (66999.9 + i * 1.37).toFixed(2), ask: (67000.1 + i * 1.37).toFixed(2),
          volume_24h: (18234.1182 + i * 0.1234).toFixed(4), change_24h_pct: (1.2 + i / 100).toFixed(3), exchange: 'coinbase', ts: 1765000000000 + i * 517,
        };
        sent.push(JSON.stringify(d));
        await h.serverSDK().trigger(channel, 'price.update', d);
      }
      let deltas = 0;
      for (let i = 0; i < sent.length; i++) {
        const isMsg = (x) => x.env.channel === channel && (x.env.event === 'price.update' || x.env.event === 'sockudo:delta');
        const f = await c.next(isMsg, `message ${i}`);
        const want = await plain.next(isMsg, `plain message ${i}`);
        let text;
        if (f.env.event === 'sockudo:delta') {
          const d = payload(f.env);
          assert.equal(d.event, 'price.update');
          // The leanest envelope: the announced algorithm is implied, no base_index without conflation.
          assert.deepEqual(Object.keys(d), ['event', 'delta', 'seq']);
          const patch = Buffer.from(d.delta, 'base64');
          if (algorithm === 'fossil') {
            // fossil-delta verifies the checksum: the base must be byte-exact.
            text = Buffer.from(fossil.applyDelta(Buffer.from(base), patch)).toString();
          } else {
            text = Buffer.from(vcdiff.decode(new Uint8Array(patch), new Uint8Array(Buffer.from(base)))).toString();
          }
          deltas++;
        } else {
          assert.equal(typeof f.env.__delta_seq, 'number', 'a full frame carries __delta_seq');
          text = f.text.replace(/,"__delta_seq":\d+/g, '').replace(/"__delta_seq":\d+,/g, '')
            .replace(/,"__conflation_key":"[^"]*"/g, '').replace(/"__conflation_key":"[^"]*",/g, '');
        }
        assert.equal(JSON.parse(want.text).data, sent[i], `message ${i}: plain data`);
        assert.equal(JSON.parse(want.text).serial, i + 2);
        if (f.env.event === 'sockudo:delta') {
          // The lean target of the plain subscriber's client text, from which the clients
          // surface what their plain path surfaces.
          assert.equal(text, h.leanTarget(want.text), `message ${i}: rebuilt text`);
          assert.deepEqual(h.deltaData(text), h.plainData(want.text), `message ${i}: sockudo-js data`);
          assert.deepEqual(h.flutterDeltaData(text), h.plainData(want.text), `message ${i}: sockudo_flutter data`);
          assert.deepEqual(h.deltaData(text), JSON.parse(sent[i]), `message ${i} rebuilt`);
        } else {
          assert.equal(text, want.text, `message ${i}: the plain subscriber's client text`);
        }
        base = text;
      }
      assert.equal(deltas, sent.length, 'every message after the first is a delta');
    });
  }

  test(`${fmt}: rewind and channel_history frames`, T, async (t) => {
    const channel = h.uniq('history');
    for (let i = 1; i <= 3; i++) await h.serverSDK().trigger(channel, 'note', { n: i });
    const c = await BinClient.open(t, fmt);
    const ack = await c.subscribe(channel, { rewind: 3 });
    assert.equal(payload(ack.env).attach_serial, 3);
    for (let i = 1; i <= 3; i++) {
      const f = await c.next((x) => x.env.event === 'note', `rewound ${i}`);
      assert.equal(f.env.serial, i);
      assert.deepEqual(payload(f.env), { n: i });
    }
    const done = await c.next((x) => x.env.event === 'sockudo:rewind_complete', 'rewind_complete');
    assert.equal(payload(done.env).historical_count, 3);
    c.send('sockudo:channel_history', { channel, limit: 2, direction: 'newest_first' });
    const page = await c.next((x) => x.env.event === 'sockudo:channel_history', 'channel_history');
    const p = payload(page.env);
    assert.equal(page.env.channel, channel);
    assert.deepEqual(p.items.map((it) => it.serial), [3, 2]);
    assert.equal(p.has_more, true);
    assert.equal(p.items[0].message.data, JSON.stringify({ n: 3 }));
  });

  test(`${fmt}: bad input gets an error frame and the connection carries on`, T, async (t) => {
    const c = await BinClient.open(t, fmt);
    const neighbour = await BinClient.open(t, fmt);
    const channel = h.uniq('calm');
    await neighbour.subscribe(channel);
    c.ws.send(Buffer.from([0xc1, 0xff, 0x00, 0x13]), { binary: true });
    const err = await c.next((f) => f.env.event === 'sockudo:error', 'error frame');
    assert.equal(payload(err.env).code, 4000);
    assert.match(payload(err.env).message, /^Invalid (MessagePack|protobuf) frame/);
    // An unknown member / field.
    const unknown = fmt === 'messagepack'
      ? mpEncode({ event: 'sockudo:ping', colour: 'red' })
      : Buffer.concat([Buffer.from(formats[fmt].encode('sockudo:ping')), Buffer.from([0x82, 0x01, 0x01, 0x78])]); // field 16
    c.ws.send(unknown, { binary: true });
    const err2 = await c.next((f) => f.env.event === 'sockudo:error', 'unknown-field error');
    assert.match(payload(err2.env).message, /unknown (member "colour"|field 16)/);
    // A text frame is read as JSON and answered in the connection's format.
    c.ws.send(JSON.stringify({ event: 'sockudo:ping', data: {} }));
    const pong = await c.next((f) => f.env.event === 'sockudo:pong', 'pong to a text ping');
    assert.equal(pong.env.message_id, undefined);
    c.send('sockudo:ping', {});
    await c.next((f) => f.env.event === 'sockudo:pong', 'pong');
    await h.serverSDK().trigger(channel, 'still.here', 'yes');
    const ev = await neighbour.next((f) => f.env.event === 'still.here', 'neighbour event');
    assert.equal(ev.env.data, 'yes');
  });
}
