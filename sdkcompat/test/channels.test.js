'use strict';
// pusher-js 8 against pushwire: connection, public/private/cache channels, client events and
// refused subscriptions; events published with the official `pusher` Node SDK.

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('../lib/helpers');

const T = { timeout: 20000 };

test('connects: state connected and a Pusher-shaped socket_id', T, async (t) => {
  const client = await h.connect(t);
  assert.equal(client.connection.state, 'connected');
  assert.match(client.connection.socket_id, /^\d+\.\d+$/);
  // pusher-js takes min(its own setting, the server's activity_timeout) as ping interval.
  assert.ok(client.connection.activityTimeout > 0, 'activity_timeout announced in the handshake');
});

test('public channel receives a trigger() from the server SDK with the data object', T, async (t) => {
  const sdk = h.serverSDK();
  const client = await h.connect(t);
  const name = h.uniq('orders');
  const { channel } = await h.subscribe(client, name);
  assert.equal(channel.subscribed, true);

  const got = h.once(channel, 'order-created', `order-created on ${name}`);
  const payload = { id: 42, items: ['a', 'b'], nested: { ok: true }, text: 'héllo "quoted" \u2713' };
  const res = await h.json(sdk.trigger(name, 'order-created', payload));
  assert.equal(typeof res, 'object');
  const { data } = await got;
  assert.deepEqual(data, payload);
});

test('a string payload arrives as the same string', T, async (t) => {
  const sdk = h.serverSDK();
  const client = await h.connect(t);
  const name = h.uniq('strings');
  const { channel } = await h.subscribe(client, name);
  const got = h.once(channel, 'plain');
  await sdk.trigger(name, 'plain', 'just text, not JSON');
  assert.equal((await got).data, 'just text, not JSON');
});

test('trigger to multiple channels reaches every channel', T, async (t) => {
  const sdk = h.serverSDK();
  const client = await h.connect(t);
  const names = [h.uniq('multi-a'), h.uniq('multi-b'), h.uniq('multi-c')];
  const chans = [];
  for (const n of names) chans.push((await h.subscribe(client, n)).channel);
  const waits = chans.map((c) => h.once(c, 'fanout', `fanout on ${c.name}`));
  await sdk.trigger(names, 'fanout', { n: 3 });
  for (const w of waits) assert.deepEqual((await w).data, { n: 3 });
});

test('triggerBatch delivers each event to its channel', T, async (t) => {
  const sdk = h.serverSDK();
  const client = await h.connect(t);
  const a = (await h.subscribe(client, h.uniq('batch-a'))).channel;
  const b = (await h.subscribe(client, h.uniq('batch-b'))).channel;
  const gotA = h.collect(a, 'ev');
  const gotB = h.collect(b, 'ev');
  await sdk.triggerBatch([
    { channel: a.name, name: 'ev', data: { i: 1 } },
    { channel: b.name, name: 'ev', data: { i: 2 } },
    { channel: a.name, name: 'ev', data: 'three' },
  ]);
  await gotA.atLeast(2, `two batch events on ${a.name}`);
  await gotB.atLeast(1, `one batch event on ${b.name}`);
  assert.deepEqual(gotA.list.map((e) => e.data), [{ i: 1 }, 'three']);
  assert.deepEqual(gotB.list.map((e) => e.data), [{ i: 2 }]);
});

test('trigger with socket_id excludes that connection only', T, async (t) => {
  const sdk = h.serverSDK();
  const excluded = await h.connect(t);
  const other = await h.connect(t);
  const name = h.uniq('exclude');
  const chEx = (await h.subscribe(excluded, name)).channel;
  const chOther = (await h.subscribe(other, name)).channel;

  const nothing = h.expectNothing(chEx, 'update', 'event delivered to the excluded socket', 800);
  const got = h.once(chOther, 'update');
  await sdk.trigger(name, 'update', { v: 1 }, { socket_id: excluded.connection.socket_id });
  assert.deepEqual((await got).data, { v: 1 });
  await nothing;
});

test('private channel: client event reaches the other client and is not echoed', T, async (t) => {
  const a = await h.connect(t);
  const b = await h.connect(t);
  const name = h.uniq('private-chat');
  const chA = (await h.subscribe(a, name)).channel;
  const chB = (await h.subscribe(b, name)).channel;

  const echoed = h.expectNothing(chA, 'client-x', 'client event echoed to its sender', 800);
  const got = h.once(chB, 'client-x', 'client-x at the other client');
  assert.equal(chA.trigger('client-x', { typing: true, who: 'a' }), true);
  const { data, metadata } = await got;
  assert.deepEqual(data, { typing: true, who: 'a' });
  assert.equal(metadata.user_id, undefined, 'no user_id on private channels');
  await echoed;

  // And the other way round.
  const back = h.once(chA, 'client-y');
  chB.trigger('client-y', { ok: 1 });
  assert.deepEqual((await back).data, { ok: 1 });
});

test('private channel with a wrong signature: subscription_error, connection stays up', T, async (t) => {
  const good = h.serverSDK();
  const bad = h.serverSDK({ secret: 'not-the-app-secret' });
  const client = await h.connect(t, {
    channelAuthorization: {
      customHandler: (params, cb) => {
        const signer = params.channelName.includes('-bad-') ? bad : good;
        cb(null, signer.authorizeChannel(params.socketId, params.channelName));
      },
    },
  });
  const badName = h.uniq('private-bad-sig');
  const connErrors = h.collect(client.connection, 'error');
  const states = h.collect(client.connection, 'state_change');

  const ch = client.subscribe(badName);
  const { data: err } = await h.once(ch, 'pusher:subscription_error', `subscription_error on ${badName}`);
  assert.equal(ch.subscribed, false);
  assert.equal(err.status, 401, `subscription_error data: ${JSON.stringify(err)}`);
  assert.equal(typeof err.error, 'string');

  // The connection is still usable: a public and a correctly signed private channel work.
  await h.sleep(200);
  assert.equal(client.connection.state, 'connected');
  assert.deepEqual(states.list, [], 'no connection state change after a refused subscription');
  const pub = (await h.subscribe(client, h.uniq('after-error'))).channel;
  const priv = (await h.subscribe(client, h.uniq('private-good-sig'))).channel;
  const got = h.once(pub, 'still-alive');
  await good.trigger(pub.name, 'still-alive', { yes: true });
  assert.deepEqual((await got).data, { yes: true });
  assert.equal(priv.subscribed, true);
  // The server also sent a connection-level pusher:error (4009), which pusher-js surfaces.
  assert.ok(connErrors.list.some((e) => e.data && e.data.data && e.data.data.code === 4009),
    `expected a pusher:error 4009, got ${JSON.stringify(connErrors.list)}`);
});

test('private channel refuses subscription when the client sends no auth at all', T, async (t) => {
  const client = await h.connect(t, {
    channelAuthorization: { customHandler: (params, cb) => cb(null, { auth: '' }) },
  });
  const ch = client.subscribe(h.uniq('private-noauth'));
  const { data } = await h.once(ch, 'pusher:subscription_error');
  assert.equal(data.status, 401);
  assert.equal(client.connection.state, 'connected');
});

test('cache channel: cache_miss when empty, then the last event for a new subscriber', T, async (t) => {
  const sdk = h.serverSDK();
  const name = h.uniq('cache-prices');

  const first = await h.connect(t);
  const ch1 = first.subscribe(name);
  const miss = h.once(ch1, 'pusher:cache_miss', `cache_miss on ${name}`);
  await h.once(ch1, 'pusher:subscription_succeeded');
  await miss;

  const live = h.once(ch1, 'price');
  await sdk.trigger(name, 'price', { eur: 10 });
  await sdk.trigger(name, 'price', { eur: 11 });
  assert.deepEqual((await live).data, { eur: 10 });

  const second = await h.connect(t);
  const ch2 = second.subscribe(name);
  const noMiss = h.expectNothing(ch2, 'pusher:cache_miss', 'cache_miss despite a cached event', 800);
  const cached = h.once(ch2, 'price', 'cached price replayed on subscribe');
  await h.once(ch2, 'pusher:subscription_succeeded');
  assert.deepEqual((await cached).data, { eur: 11 }, 'the last event is the cached one');
  await noMiss;
});

test('unsubscribe stops delivery', T, async (t) => {
  const sdk = h.serverSDK();
  const client = await h.connect(t);
  const name = h.uniq('unsub');
  const { channel } = await h.subscribe(client, name);
  const events = h.collect(channel, 'tick');
  await sdk.trigger(name, 'tick', { n: 1 });
  await events.atLeast(1);
  client.unsubscribe(name);
  // pusher:unsubscribe has no reply: wait until the REST API reports the channel vacant.
  await h.waitFor(async () => !(await h.json(sdk.get({ path: `/channels/${name}` }))).occupied,
    `${name} unoccupied after unsubscribe`);
  await sdk.trigger(name, 'tick', { n: 2 });
  await h.sleep(h.QUIET_MS);
  assert.deepEqual(events.list.map((e) => e.data), [{ n: 1 }]);
});
