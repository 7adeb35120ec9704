// Laravel Echo 2 (broadcaster "pusher", over pusher-js) against pushwire, with channel
// authorization signed by the official `pusher` Node SDK through Echo's `authorizer` option.

import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import Echo from 'laravel-echo';

const require = createRequire(import.meta.url);
const h = require('../lib/helpers.js');

const T = { timeout: 20000 };

/** Echo's classic authorizer hook, signing with the server SDK (no HTTP auth endpoint). */
function authorizer(user, signer = h.serverSDK()) {
  return (channel) => ({
    authorize(socketId, callback) {
      try {
        const presence = channel.name.startsWith('presence-');
        callback(null, signer.authorizeChannel(socketId, channel.name, presence ? user : undefined));
      } catch (err) {
        callback(err, null);
      }
    },
  });
}

/** A connected Echo instance, disconnected when t ends. */
async function makeEcho(t, { user, signer, namespace } = {}) {
  const opts = {
    broadcaster: 'pusher',
    key: h.APP_KEY,
    wsHost: h.HOST,
    wsPort: h.PORT,
    forceTLS: false,
    enabledTransports: ['ws'],
    cluster: 'mt1',
    disableStats: true,
    Pusher: h.PusherJS,
    authorizer: authorizer(user, signer),
  };
  if (namespace !== undefined) opts.namespace = namespace;
  const echo = new Echo(opts);
  t.after(() => echo.disconnect());
  await h.waitFor(() => echo.connectionStatus() === 'connected', 'Echo connected');
  assert.match(echo.socketId(), /^\d+\.\d+$/);
  return echo;
}

/** Resolves when an Echo channel reports subscribed, rejects on its error(). */
function subscribed(channel, what) {
  return h.withTimeout(
    new Promise((resolve, reject) => {
      channel.subscribed(resolve);
      channel.error((e) => reject(new Error(`${what}: ${JSON.stringify(e)}`)));
    }),
    `${what} subscribed`,
  );
}

/** A promise of the next callback invocation, bounded. */
function nextCall(what) {
  let fn;
  const p = new Promise((resolve) => {
    fn = (...args) => resolve(args);
  });
  return { fn, promise: h.withTimeout(p, what) };
}

test('echo.channel().listen(".order.shipped") receives a pusher SDK trigger', T, async (t) => {
  const sdk = h.serverSDK();
  const echo = await makeEcho(t);
  const name = h.uniq('orders');
  const got = nextCall('.order.shipped');
  const ch = echo.channel(name).listen('.order.shipped', got.fn);
  await subscribed(ch, name);
  await sdk.trigger(name, 'order.shipped', { order: { id: 7, status: 'shipped' } });
  const [data] = await got.promise;
  assert.deepEqual(data, { order: { id: 7, status: 'shipped' } });
});

test('echo listen() with the default App.Events namespace (Laravel event class names)', T, async (t) => {
  const sdk = h.serverSDK();
  const echo = await makeEcho(t);
  const name = h.uniq('orders-ns');
  const got = nextCall('OrderShipped');
  const ch = echo.channel(name).listen('OrderShipped', got.fn);
  await subscribed(ch, name);
  // What Laravel's broadcaster sends: the event class name with backslashes.
  await sdk.trigger(name, 'App\\Events\\OrderShipped', { id: 8 });
  assert.deepEqual((await got.promise)[0], { id: 8 });
});

test('echo.private().listenForWhisper() receives another Echo whisper', T, async (t) => {
  const a = await makeEcho(t);
  const b = await makeEcho(t);
  const got = nextCall('whisper typing');
  const chB = b.private('chat-' + h.uniq('w')).listenForWhisper('typing', got.fn);
  await subscribed(chB, chB.name);
  const chA = a.private(chB.name.slice('private-'.length));
  await subscribed(chA, chA.name);
  let selfHeard = false;
  chA.listenForWhisper('typing', () => {
    selfHeard = true;
  });
  chA.whisper('typing', { name: 'Taylor', typing: true });
  assert.deepEqual((await got.promise)[0], { name: 'Taylor', typing: true });
  await h.sleep(h.QUIET_MS);
  assert.equal(selfHeard, false, 'a whisper must not be echoed to its sender');
});

test('echo.private() listens to server events too', T, async (t) => {
  const sdk = h.serverSDK();
  const echo = await makeEcho(t);
  const room = h.uniq('inbox');
  const got = nextCall('.message.created');
  const ch = echo.private(room).listen('.message.created', got.fn);
  await subscribed(ch, ch.name);
  await sdk.trigger(`private-${room}`, 'message.created', { body: 'hi' });
  assert.deepEqual((await got.promise)[0], { body: 'hi' });
});

test('echo.join() presence: here, joining and leaving', T, async (t) => {
  const room = h.uniq('room');
  const a = await makeEcho(t, { user: { user_id: 'e1', user_info: { name: 'First' } } });
  const here = nextCall('here');
  const joining = nextCall('joining');
  const leaving = nextCall('leaving');
  const chA = a.join(room).here(here.fn).joining(joining.fn).leaving(leaving.fn);
  assert.equal(chA.name, `presence-${room}`);
  assert.deepEqual((await here.promise)[0], [{ name: 'First' }]);

  const b = await makeEcho(t, { user: { user_id: 'e2', user_info: { name: 'Second' } } });
  const hereB = nextCall('here at B');
  b.join(room).here(hereB.fn);
  const membersB = (await hereB.promise)[0];
  assert.deepEqual(membersB.map((m) => m.name).sort(), ['First', 'Second']);
  assert.deepEqual((await joining.promise)[0], { name: 'Second' });

  b.disconnect();
  assert.deepEqual((await leaving.promise)[0], { name: 'Second' });
});

test('echo channel.error() fires on a bad signature', T, async (t) => {
  const echo = await makeEcho(t, {
    user: { user_id: 'intruder', user_info: {} },
    signer: h.serverSDK({ secret: 'wrong-secret' }),
  });
  const got = nextCall('error()');
  const ch = echo.private(h.uniq('forbidden')).error(got.fn);
  const [err] = await got.promise;
  assert.equal(err.status, 401, JSON.stringify(err));
  assert.equal(echo.connectionStatus(), 'connected');
  assert.ok(ch.subscription && ch.subscription.subscribed === false);

  // Presence with a bad signature too.
  const gotP = nextCall('presence error()');
  echo.join(h.uniq('forbidden-room')).error(gotP.fn);
  assert.equal((await gotP.promise)[0].status, 401);
});

test('echo leave() unsubscribes', T, async (t) => {
  const sdk = h.serverSDK();
  const echo = await makeEcho(t);
  const name = h.uniq('leave');
  const calls = [];
  const ch = echo.channel(name).listen('.ping', (d) => calls.push(d));
  await subscribed(ch, name);
  echo.leave(name);
  await h.waitFor(async () => !(await h.json(sdk.get({ path: `/channels/${name}` }))).occupied,
    `${name} unoccupied after leave`);
  await sdk.trigger(name, 'ping', { n: 1 });
  await h.sleep(h.QUIET_MS);
  assert.deepEqual(calls, []);
});
