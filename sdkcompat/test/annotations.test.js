'use strict';
// Annotations on mutable messages. The official `pusher` Node SDK publishes, lists and
// deletes them on Sockudo's routes (its signed post()/get(), and a DELETE signed with its
// createSignedQueryString, as Sockudo's own server SDKs do); raw protocol-2 sockets in every
// wire format (JSON, MessagePack, protobuf with sockudo-js's and sockudo_flutter's field
// numbers, decoded by @msgpack/msgpack and protobufjs) subscribe the way sockudo-js and
// sockudo_flutter do with annotationSubscribe (modes ["SUBSCRIBE","ANNOTATION_SUBSCRIBE"]),
// and the message.summary every V2 subscriber holds must equal the reducer written here.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const WebSocket = require('ws');
const { encode: mpEncode, decode: mpDecode } = require('@msgpack/msgpack');
const protobuf = require('protobufjs');
const h = require('../lib/helpers');

const T = { timeout: 30000 };

// Envelope fields as the clients number them (sockudo-js; sockudo_flutter numbers extras 12).
const schemas = protobuf.parse(`
syntax = "proto3";
package ann;
message Data { oneof kind { string string_value = 1; Structured structured = 2; string json_value = 3; bytes binary_value = 4; } }
message Structured { string channel_data = 1; string channel = 2; string user_data = 3; map<string, string> extra = 4; }
message Extras { optional bool ephemeral = 2; }
message Js { optional string event = 1; optional string channel = 2; Data data = 3; Extras extras = 13; }
message Flutter { string event = 1; string channel = 2; Data data = 3; Extras extras = 12; }
`).root;

function protoFormat(type) {
  const T = schemas.lookupType(type);
  return {
    decode(buf) {
      const m = T.toObject(T.decode(buf), { longs: String });
      const env = { event: m.event, channel: m.channel };
      if (m.data?.jsonValue !== undefined) env.data = JSON.parse(m.data.jsonValue);
      else if (m.data?.stringValue !== undefined) env.data = m.data.stringValue;
      if (m.extras) env.extras = { ...(m.extras.ephemeral !== undefined ? { ephemeral: m.extras.ephemeral } : {}) };
      return env;
    },
    encode(event, data) {
      return T.encode(T.fromObject({ event, data: { jsonValue: JSON.stringify(data) } })).finish();
    },
  };
}

const formats = {
  json: {
    query: 'format=json',
    text: true,
    decode: (buf) => JSON.parse(buf.toString()),
    encode: (event, data) => JSON.stringify({ event, data }),
  },
  messagepack: {
    query: 'format=messagepack&client=js',
    decode(buf) {
      const a = mpDecode(buf);
      assert.ok(Array.isArray(a) && a.length === 15, 'a MessagePack frame is the positional array');
      const env = { event: a[0], channel: a[1] ?? undefined };
      if (Array.isArray(a[2])) env.data = a[2][0] === 'json' ? JSON.parse(a[2][1]) : a[2][1];
      if (a[12]) env.extras = a[12];
      return env;
    },
    encode: (event, data) => mpEncode([event, null, ['json', JSON.stringify(data)], null, null, null, null, null, null, null, null, null, null, null, null]),
  },
  protobuf: { query: 'format=protobuf&client=js', ...protoFormat('ann.Js') },
  'protobuf (client=flutter)': { query: 'format=protobuf&client=flutter', ...protoFormat('ann.Flutter') },
};

/** An HS256 capability token for the app (kid = app key), as a Sockudo backend mints one. */
function capabilityToken(clientId, grants) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT', kid: h.APP_KEY })}.${b64({
    'x-sockudo-capability': JSON.stringify(grants), 'x-sockudo-client-id': clientId, jti: crypto.randomUUID(), iat: now, nbf: now, exp: now + 600,
  })}`;
  return `${body}.${crypto.createHmac('sha256', h.APP_SECRET).update(body).digest('base64url')}`;
}

/** A raw protocol-2 socket in one format: it keeps every frame and waits on frames. */
async function v2(t, fmt, token) {
  const f = formats[fmt];
  const q = `protocol=2&version=1.0.0&flash=false&${f.query}${token ? `&token=${encodeURIComponent(token)}` : ''}`;
  const ws = new WebSocket(`ws://${h.HOST}:${h.PORT}/app/${h.APP_KEY}?${q}`);
  t.after(() => ws.terminate());
  const c = { fmt, frames: [], errors: [], waiters: [], seen: 0 };
  ws.on('message', (buf, isBinary) => {
    try {
      assert.equal(isBinary, !f.text, `frame kind on ${fmt}`);
      c.frames.push(f.decode(buf));
    } catch (e) {
      c.errors.push(e);
    }
    c.waiters.splice(0).forEach((w) => w());
  });
  c.send = (event, data) => ws.send(f.encode(event, data), { binary: !f.text });
  c.next = async (pred, what) => {
    const deadline = Date.now() + h.WAIT_MS;
    for (;;) {
      if (c.errors.length) throw c.errors[0];
      while (c.seen < c.frames.length) {
        const fr = c.frames[c.seen++];
        if (pred(fr)) return fr;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${fmt}: timed out waiting for ${what}; got ${JSON.stringify(c.frames)}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        c.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  };
  await c.next((fr) => fr.event === 'sockudo:connection_established', 'connection_established');
  return c;
}

/**
 * The summary a client should hold after these raw annotation events, Sockudo's semantics
 * written plainly: total counts creates minus deletes; flag is the set of clients; distinct
 * is per name the set of clients; unique is per name the clients whose latest annotation
 * it is; multiple is per name each client's summed count (a delete drops the client) plus
 * the count of annotations without a client.
 */
function reduce(events) {
  const st = {};
  const kind = (type) => type.slice(type.indexOf(':') + 1, type.lastIndexOf('.'));
  for (const e of events) {
    const s = (st[e.type] ??= { total: 0, set: new Set(), names: new Map(), current: new Map(), counts: new Map(), anon: new Map() });
    const add = e.action === 'annotation.create';
    const drop = (name) => {
      const set = s.names.get(name);
      if (!set) return;
      set.delete(e.clientId);
      if (!set.size) s.names.delete(name);
    };
    const join = () => {
      if (!s.names.has(e.name)) s.names.set(e.name, new Set());
      s.names.get(e.name).add(e.clientId);
    };
    switch (kind(e.type)) {
      case 'total': s.total = add ? s.total + 1 : Math.max(0, s.total - 1); break;
      case 'flag': if (add) s.set.add(e.clientId); else s.set.delete(e.clientId); break;
      case 'distinct': if (add) join(); else drop(e.name); break;
      case 'unique':
        if (s.current.has(e.clientId)) { drop(s.current.get(e.clientId)); s.current.delete(e.clientId); }
        if (add) { s.current.set(e.clientId, e.name); join(); }
        break;
      case 'multiple': {
        if (!s.counts.has(e.name)) s.counts.set(e.name, new Map());
        const c = s.counts.get(e.name);
        const n = Math.max(e.count ?? 1, 1);
        if (add && !e.clientId) s.anon.set(e.name, (s.anon.get(e.name) ?? 0) + n);
        else if (add) c.set(e.clientId, (c.get(e.clientId) ?? 0) + n);
        else if (e.clientId) c.delete(e.clientId);
        break;
      }
    }
  }
  const ids = (set) => ({ total: set.size, clientIds: [...set].sort(), clipped: false });
  const out = {};
  for (const [type, s] of Object.entries(st)) {
    switch (kind(type)) {
      case 'total': out[type] = { total: s.total }; break;
      case 'flag': out[type] = ids(s.set); break;
      case 'distinct':
      case 'unique': out[type] = Object.fromEntries([...s.names].map(([n, set]) => [n, ids(set)])); break;
      case 'multiple':
        out[type] = Object.fromEntries([...s.counts].map(([n, c]) => {
          const anon = s.anon.get(n) ?? 0;
          const sum = [...c.values()].reduce((a, b) => a + b, anon);
          return [n, { total: sum, clientCounts: Object.fromEntries(c), totalUnidentified: anon, clipped: false, totalClientIds: c.size }];
        }));
        break;
    }
  }
  return out;
}

/** Order-insensitive deep equality of JSON values (summary maps come in any key order). */
function canon(v) {
  if (Array.isArray(v)) return v.map(canon);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]));
  return v;
}

/** DELETE signed by the official SDK (it has no delete method; its signer covers any verb). */
function sdkDelete(sdk, path, params = {}) {
  const qs = sdk.createSignedQueryString({ method: 'DELETE', path: `/apps/${h.APP_ID}${path}`, params });
  return new Promise((resolve, reject) => {
    const req = http.request({ host: h.HOST, port: h.PORT, method: 'DELETE', path: `/apps/${h.APP_ID}${path}?${qs}`, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: body ? JSON.parse(body) : null }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function sdkCall(p) {
  try {
    const res = await p;
    return { status: res.status, body: JSON.parse(await res.text()) };
  } catch (err) {
    if (err.status) return { status: err.status, body: JSON.parse(err.body) };
    throw err;
  }
}

test('annotations: publish, list, delete through the pusher SDK; raw events and summaries in every wire format', T, async (t) => {
  const sdk = h.serverSDK();
  const channel = h.uniq('ann-room');
  const token = capabilityToken('watcher', { '*': ['subscribe', 'history', 'annotation-subscribe'] });
  const raws = [];
  const plains = [];
  for (const fmt of Object.keys(formats)) {
    const raw = await v2(t, fmt, token);
    raw.send('sockudo:subscribe', { channel, modes: ['SUBSCRIBE', 'ANNOTATION_SUBSCRIBE'] });
    await raw.next((f) => f.event === 'sockudo_internal:subscription_succeeded', `${fmt} ack`);
    raws.push(raw);
    const plain = await v2(t, fmt);
    plain.send('sockudo:subscribe', { channel });
    await plain.next((f) => f.event === 'sockudo_internal:subscription_succeeded', `${fmt} ack`);
    plains.push(plain);
  }
  const created = await h.json(sdk.trigger(channel, 'chat.message', 'hello'));
  const serial = created.channels[channel].message_serial;
  assert.ok(serial);
  const base = `/channels/${channel}/messages/${encodeURIComponent(serial)}/annotations`;

  const bodies = [
    { type: 'reaction:distinct.v1', name: 'like', clientId: 'alice', data: { emoji: '👍' } },
    { type: 'reaction:distinct.v1', name: 'like', clientId: 'bob' },
    { type: 'reaction:distinct.v1', name: 'heart', clientId: 'alice' },
    { type: 'vote:unique.v1', name: 'yes', clientId: 'carol' },
    { type: 'vote:unique.v1', name: 'no', clientId: 'carol' },
    { type: 'poll:multiple.v1', name: 'a', clientId: 'dave', count: 3 },
    { type: 'poll:multiple.v1', name: 'a', count: 2 },
    { type: 'receipt:flag.v1', clientId: 'erin' },
    { type: 'views:total.v1' },
  ];
  const serials = [];
  for (const body of bodies) {
    const res = await sdkCall(sdk.post({ path: base, body }));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(Object.keys(res.body), ['annotationSerial']);
    serials.push(res.body.annotationSerial);
  }
  const del = await sdkDelete(sdk, `${base}/${encodeURIComponent(serials[0])}`);
  assert.equal(del.status, 200, JSON.stringify(del.body));
  assert.equal(del.body.deletedAnnotationSerial, serials[0]);
  assert.ok(del.body.annotationSerial > serials[serials.length - 1]);

  // Every raw subscriber, in every format, gets the ten events in order, Sockudo's shape.
  let events;
  for (const raw of raws) {
    const got = [];
    while (got.length < 10) {
      const f = await raw.next((x) => x.event === 'sockudo_internal:annotation', `${raw.fmt} annotation ${got.length}`);
      assert.equal(f.channel, channel);
      got.push(f.data);
    }
    assert.deepEqual(got.map((e) => e.serial), [...serials, del.body.annotationSerial], raw.fmt);
    assert.equal(got[0].action, 'annotation.create');
    assert.equal(got[0].messageSerial, serial);
    assert.deepEqual(got[0].data, { emoji: '👍' });
    assert.ok(typeof got[0].id === 'string' && typeof got[0].timestamp === 'number');
    assert.equal(got[9].action, 'annotation.delete');
    assert.equal(got[9].id, undefined);
    assert.equal(got[9].clientId, 'alice');
    if (events) assert.deepEqual(got, events, `${raw.fmt} decodes the same events as json`);
    events = got;
  }
  // Every V2 subscriber ends with a summary equal to the reducer's; summaries are ephemeral.
  const want = canon(reduce(events));
  for (const c of [...raws, ...plains]) {
    const f = await c.next((x) => x.event === 'sockudo_internal:message' && x.data?.action === 'message.summary' &&
      JSON.stringify(canon(x.data.annotations.summary)) === JSON.stringify(want), `${c.fmt} final summary`);
    assert.equal(f.data.serial, serial);
    assert.deepEqual(f.extras, { ephemeral: true });
  }
  for (const p of plains) {
    assert.ok(!p.frames.some((f) => f.event === 'sockudo_internal:annotation'), `${p.fmt}: raw annotations without ANNOTATION_SUBSCRIBE`);
  }

  // The list, paged with from_serial as the SDK's AnnotationEventsParams name it.
  const page1 = await h.json(sdk.get({ path: base, params: { limit: 4 } }));
  assert.deepEqual(Object.keys(page1).sort(), ['channel', 'hasMore', 'items', 'limit', 'messageSerial', 'nextCursor']);
  assert.equal(page1.hasMore, true);
  assert.equal(page1.items.length, 4);
  const rest = [];
  let cursor = page1.nextCursor;
  while (cursor) {
    const p = await h.json(sdk.get({ path: base, params: { limit: 4, from_serial: cursor } }));
    rest.push(...p.items);
    cursor = p.hasMore ? p.nextCursor : null;
  }
  assert.deepEqual([...page1.items, ...rest], events);
  const flags = await h.json(sdk.get({ path: base, params: { type: 'receipt:flag.v1' } }));
  assert.deepEqual(flags.items.map((e) => e.clientId), ['erin']);

  // Bad input: unknown message 404, bad type 400, oversized data 413.
  const missing = await sdkCall(sdk.post({ path: `/channels/${channel}/messages/nope/annotations`, body: { type: 'views:total.v1' } }));
  assert.equal(missing.status, 404);
  const badType = await sdkCall(sdk.post({ path: base, body: { type: 'reaction:likes.v1' } }));
  assert.equal(badType.status, 400);
  const big = await sdkCall(sdk.post({ path: base, body: { type: 'views:total.v1', data: 'x'.repeat(101 * 1024) } }));
  assert.equal(big.status, 413);
});
