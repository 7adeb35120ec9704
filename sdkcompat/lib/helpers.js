'use strict';
// Shared helpers of the sdkcompat suites: real pusher-js clients whose channel authorization
// and user authentication are signed by the official `pusher` server SDK, bounded waits, and
// per-test cleanup. Every wait rejects after a timeout; every client is disconnected when the
// test that made it ends.

const assert = require('node:assert/strict');
const http = require('node:http');
const crypto = require('node:crypto');
const PusherJS = require('pusher-js');
const PusherServer = require('pusher');
const WebSocket = require('ws');

const HOST = process.env.PUSHWIRE_HOST || '127.0.0.1';
const PORT = Number(process.env.PUSHWIRE_PORT || 6001);
const APP_ID = process.env.PUSHWIRE_APP_ID || 'app-id';
const APP_KEY = process.env.PUSHWIRE_APP_KEY || 'app-key';
const APP_SECRET = process.env.PUSHWIRE_APP_SECRET || 'app-secret';

// How long any single wait may take.
const WAIT_MS = 5000;
// How long to listen for an event that must NOT arrive.
const QUIET_MS = 400;

// No keep-alive: the test processes must exit as soon as their tests end.
const agent = new http.Agent({ keepAlive: false });

/** The official Node server SDK configured for the server under test. */
function serverSDK(extra = {}) {
  return new PusherServer({
    appId: APP_ID,
    key: APP_KEY,
    secret: APP_SECRET,
    host: HOST,
    port: PORT,
    useTLS: false,
    timeout: WAIT_MS,
    agent,
    ...extra,
  });
}

/** A fresh base64 encryption master key (32 random bytes). */
function randomMasterKey() {
  return crypto.randomBytes(32).toString('base64');
}

/** A name unique to this run, e.g. uniq('private-chat') → 'private-chat-3f9a1c2b7d'. */
function uniq(prefix) {
  return `${prefix}-${crypto.randomBytes(5).toString('hex')}`;
}

/** Resolves with p's value, or rejects with "timed out: what" after ms. */
function withTimeout(p, what, ms = WAIT_MS) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Waits for one `event` on a pusher-js dispatcher (client, channel, connection, user…). */
function once(target, event, what = event, ms = WAIT_MS) {
  return onceWhere(target, event, () => true, what, ms);
}

/** Like once, for the first event whose payload satisfies pred(data, metadata). */
function onceWhere(target, event, pred, what = event, ms = WAIT_MS) {
  let handler;
  const p = new Promise((resolve) => {
    handler = (data, metadata) => {
      if (pred(data, metadata)) resolve({ data, metadata });
    };
    target.bind(event, handler);
  });
  return withTimeout(p, what, ms).finally(() => target.unbind(event, handler));
}

/** Collects every `event` on a dispatcher; .list holds the payloads, .next() awaits the next. */
function collect(target, event) {
  const list = [];
  let waiters = [];
  const handler = (data, metadata) => {
    list.push({ data, metadata });
    const w = waiters;
    waiters = [];
    w.forEach((fn) => fn());
  };
  target.bind(event, handler);
  return {
    list,
    /** Resolves when at least n events arrived. */
    async atLeast(n, what = `${n} × ${event}`, ms = WAIT_MS) {
      const p = new Promise((resolve) => {
        const check = () => (list.length >= n ? resolve(list) : waiters.push(check));
        check();
      });
      return withTimeout(p, what, ms);
    },
    stop() {
      target.unbind(event, handler);
    },
  };
}

/** Resolves after ms unless `event` fires on target first, in which case it rejects. */
function expectNothing(target, event, what = event, ms = QUIET_MS) {
  return new Promise((resolve, reject) => {
    const handler = (data) => {
      clearTimeout(timer);
      target.unbind(event, handler);
      reject(new Error(`unexpected ${what}: ${JSON.stringify(data)}`));
    };
    const timer = setTimeout(() => {
      target.unbind(event, handler);
      resolve();
    }, ms);
    target.bind(event, handler);
  });
}

/** Polls cond (which may be async) every 20 ms until it is truthy, rejecting after ms. */
function waitFor(cond, what, ms = WAIT_MS) {
  let stopped = false;
  let timer;
  return withTimeout(
    new Promise((resolve, reject) => {
      const tick = async () => {
        if (stopped) return;
        try {
          const v = await cond();
          if (v) return resolve(v);
        } catch (err) {
          return reject(err);
        }
        if (!stopped) timer = setTimeout(tick, 20);
      };
      tick();
    }),
    what,
    ms,
  ).finally(() => {
    stopped = true;
    clearTimeout(timer);
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * channelAuthorization.customHandler signing with the official SDK.
 *   user:      presence member {user_id, user_info} (presence channels only)
 *   signer:    the PusherServer that signs (defaults to the correct one); pass one with a
 *              wrong secret to produce a bad signature.
 *   calls:     optional array receiving every {socketId, channelName} asked for.
 */
function channelAuthHandler({ user, signer = serverSDK(), calls } = {}) {
  return (params, callback) => {
    if (calls) calls.push(params);
    try {
      const presence = params.channelName.startsWith('presence-');
      const auth = signer.authorizeChannel(params.socketId, params.channelName, presence ? user : undefined);
      callback(null, auth);
    } catch (err) {
      callback(err, null);
    }
  };
}

/** userAuthentication.customHandler signing {id, …userData} with the official SDK. */
function userAuthHandler(userData, signer = serverSDK()) {
  return (params, callback) => {
    try {
      callback(null, signer.authenticateUser(params.socketId, userData));
    } catch (err) {
      callback(err, null);
    }
  };
}

/** pusher-js options for the server under test. */
function clientOptions({ user, userData, signer, channelAuthorization, userAuthentication, ...rest } = {}) {
  return {
    wsHost: HOST,
    wsPort: PORT,
    forceTLS: false,
    enabledTransports: ['ws'],
    cluster: 'mt1',
    disableStats: true,
    channelAuthorization: channelAuthorization || { customHandler: channelAuthHandler({ user, signer }) },
    userAuthentication: userAuthentication || {
      customHandler: userAuthHandler(userData || { id: 'nobody' }, signer),
    },
    ...rest,
  };
}

/**
 * A connected pusher-js client, disconnected when test t ends.
 * opts: user (presence member), userData (sign-in data), signer, and any pusher-js option.
 */
async function connect(t, opts = {}) {
  const client = new PusherJS(APP_KEY, clientOptions(opts));
  const sockets = trackSockets(client);
  t.after(() => {
    client.disconnect();
    releaseClosedSockets(sockets);
  });
  if (client.connection.state !== 'connected') {
    await withTimeout(
      new Promise((resolve, reject) => {
        client.connection.bind('connected', resolve);
        client.connection.bind('failed', () => reject(new Error('connection failed')));
        client.connection.bind('unavailable', () => reject(new Error('connection unavailable')));
      }),
      `pusher-js connecting to ${HOST}:${PORT}`,
    );
  }
  return client;
}

/** Remembers every underlying WebSocket (faye-websocket in the Node build) of a client. */
function trackSockets(client) {
  const sockets = new Set();
  client.connection.bind('connected', () => {
    const tc = client.connection.connection && client.connection.connection.transport;
    if (tc && tc.socket) sockets.add(tc.socket);
  });
  return sockets;
}

// Client-side quirk, not a server issue: when the server closes with a "refused" code
// (4001–4099, e.g. 4009 from terminate_connections), pusher-js 8 handles the close event by
// calling close() again on the already-closed faye-websocket, which arms faye's 30 s close
// timer that nothing clears. The test process would then linger 30 s; clear it.
function releaseClosedSockets(sockets) {
  for (const sock of sockets) {
    if (sock.readyState === 3 && sock._closeTimer) clearTimeout(sock._closeTimer);
  }
}

/** Subscribes and waits for pusher:subscription_succeeded (rejects on subscription_error). */
async function subscribe(client, name) {
  const channel = client.subscribe(name);
  if (channel.subscribed) return { channel, data: undefined };
  const data = await withTimeout(
    new Promise((resolve, reject) => {
      channel.bind('pusher:subscription_succeeded', resolve);
      channel.bind('pusher:subscription_error', (err) => reject(new Error(`subscription_error on ${name}: ${JSON.stringify(err)}`)));
    }),
    `subscription_succeeded on ${name}`,
  );
  return { channel, data };
}

/**
 * A raw protocol-2 WebSocket client (the `ws` package): it keeps every frame, answers nothing
 * by itself, and waits on frames (never on time). query: extra URL parameters
 * (append_rollup_window, token, ...); version: the client version it announces; onFrame sees
 * each parsed frame before any waiter does. Resolves once connection_established arrived.
 */
async function rawV2(t, { query = {}, version = '9.0.0', onFrame } = {}) {
  const params = new URLSearchParams({ protocol: '2', client: 'js', version, flash: 'false', ...query });
  const ws = new WebSocket(`ws://${HOST}:${PORT}/app/${APP_KEY}?${params}`);
  const frames = [];
  let waiters = [];
  ws.on('message', (raw) => {
    const f = JSON.parse(raw.toString());
    frames.push(f);
    if (onFrame) onFrame(f);
    const w = waiters;
    waiters = [];
    w.forEach((fn) => fn());
  });
  const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  t.after(() => ws.terminate());
  const c = {
    ws,
    frames,
    closed,
    /** Sends {event, channel, data} ({event, data} without a channel), as sockudo-js does. */
    send(event, data, channel) {
      ws.send(JSON.stringify(channel ? { event, channel, data } : { event, data }));
    },
    /** Resolves with the next frame (from index from on) satisfying pred, and its index. */
    async next(pred, what, from = 0) {
      const p = new Promise((resolve) => {
        const check = () => {
          const i = frames.findIndex((f, j) => j >= from && pred(f));
          if (i >= 0) resolve({ frame: frames[i], index: i });
          else waiters.push(check);
        };
        check();
      });
      return withTimeout(p, what);
    },
    /** Proves nothing else is pending: a sockudo:ping's pong is the next new frame. */
    async quiet() {
      const from = frames.length;
      this.send('sockudo:ping', {});
      const { index } = await this.next((f) => f.event === 'sockudo:pong', 'sockudo:pong', from);
      assert.equal(index, from, `frames before the pong: ${JSON.stringify(frames.slice(from, index))}`);
    },
  };
  const { frame } = await c.next((f) => f.event.endsWith(':connection_established') || f.event.endsWith(':error'), 'handshake');
  assert.equal(frame.event, 'sockudo:connection_established', JSON.stringify(frame));
  c.socketId = JSON.parse(frame.data).socket_id;
  return c;
}

/** Parses a response of the server SDK's get()/post() as JSON. */
async function json(resPromise) {
  const res = await resPromise;
  return JSON.parse(await res.text());
}

/**
 * What the clients surface as a message's data (reproduced from reading sockudo-js
 * protocol.ts envelopeToEvent / core/delta/manager.ts handleDeltaMessage and
 * sockudo_flutter protocol_codec.dart decodeEvent / delta_compression.dart):
 * - plainData(text): a full frame's text — its data, JSON-decoded once more when a string;
 * - deltaData(text): a text a delta rebuilt — sockudo-js `parsed.data || parsed`;
 * - flutterDeltaData(text): the same for sockudo_flutter — `parsed['data']` when parsed is
 *   an object holding "data", else parsed.
 */
function plainData(text) {
  const d = JSON.parse(text).data;
  if (typeof d !== 'string') return d;
  try {
    return JSON.parse(d);
  } catch {
    return d;
  }
}

function deltaData(text) {
  const parsed = JSON.parse(text);
  return parsed.data || parsed;
}

function flutterDeltaData(text) {
  const parsed = JSON.parse(text);
  return parsed && typeof parsed === 'object' && !Array.isArray(parsed) && 'data' in parsed ? parsed.data : parsed;
}

/**
 * The text pushwire's deltas rebuild for a message whose full-frame client text is plain,
 * for messages whose data is a string holding a JSON object (the streams of these tests):
 * {"event","channel","data"} with that object's JSON as it was in the string.
 */
function leanTarget(plain) {
  const f = JSON.parse(plain);
  return `{"event":${JSON.stringify(f.event)},"channel":${JSON.stringify(f.channel)},"data":${f.data.trim()}}`;
}

module.exports = {
  HOST,
  PORT,
  APP_ID,
  APP_KEY,
  APP_SECRET,
  WAIT_MS,
  QUIET_MS,
  PusherJS,
  PusherServer,
  serverSDK,
  randomMasterKey,
  uniq,
  withTimeout,
  once,
  onceWhere,
  collect,
  expectNothing,
  waitFor,
  sleep,
  channelAuthHandler,
  userAuthHandler,
  clientOptions,
  connect,
  subscribe,
  json,
  rawV2,
  plainData,
  deltaData,
  flutterDeltaData,
  leanTarget,
};
