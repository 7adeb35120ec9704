'use strict';
// User authentication with pusher-js: signin() signed by the `pusher` SDK's authenticateUser,
// sendToUser, watchlist online/offline events and terminateUserConnections.

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('../lib/helpers');

const T = { timeout: 20000 };

/** Connects, signs in as userData and waits for the #server-to-user channel to be ready. */
async function signedIn(t, userData, extra = {}) {
  const client = await h.connect(t, { userData, ...extra });
  const success = h.once(client, 'pusher:signin_success', `signin_success for ${userData.id}`);
  client.signin();
  const { data } = await success;
  assert.equal(typeof data.user_data, 'string', 'signin_success carries user_data as a string');
  assert.deepEqual(JSON.parse(data.user_data), userData);
  await h.waitFor(
    () => client.user.serverToUserChannel && client.user.serverToUserChannel.subscribed,
    `#server-to-user-${userData.id} subscribed`,
  );
  return client;
}

test('signin: signin_success, pusher.user.user_data and the user channel', T, async (t) => {
  const id = h.uniq('user');
  const client = await signedIn(t, { id, user_info: { name: 'Ada' } });
  assert.deepEqual(client.user.user_data, { id, user_info: { name: 'Ada' } });
  assert.equal(client.user.serverToUserChannel.name, `#server-to-user-${id}`);
  assert.equal(client.connection.state, 'connected');
});

test('sendToUser reaches every socket of the user and nobody else', T, async (t) => {
  const sdk = h.serverSDK();
  const id = h.uniq('user');
  const a = await signedIn(t, { id });
  const b = await signedIn(t, { id });
  const other = await signedIn(t, { id: h.uniq('user') });

  const gotA = h.once(a.user, 'notice', 'sendToUser at socket A');
  const gotB = h.once(b.user, 'notice', 'sendToUser at socket B');
  const nothing = h.expectNothing(other.user, 'notice', 'sendToUser at another user', 800);
  await sdk.sendToUser(id, 'notice', { hello: 'you', n: 1 });
  assert.deepEqual((await gotA).data, { hello: 'you', n: 1 });
  assert.deepEqual((await gotB).data, { hello: 'you', n: 1 });
  await nothing;
});

test('signin with a wrong signature is refused and the connection stays up', T, async (t) => {
  const client = await h.connect(t, { userData: { id: 'eve' }, signer: h.serverSDK({ secret: 'wrong' }) });
  const err = h.onceWhere(client.connection, 'error', (e) => e && e.data && e.data.code === 4009, 'pusher:error 4009 after bad signin');
  const noSuccess = h.expectNothing(client, 'pusher:signin_success', 'signin_success with a bad signature', 800);
  client.signin();
  await err;
  await noSuccess;
  assert.equal(client.connection.state, 'connected');
  assert.equal(client.user.user_data, null);
});

test('watchlist: online when a watched user signs in, offline when it disconnects', T, async (t) => {
  const watched = h.uniq('watched');
  const alsoWatched = h.uniq('watched-never');
  const watcher = await h.connect(t, { userData: { id: h.uniq('watcher'), watchlist: [watched, alsoWatched] } });
  const online = h.collect(watcher.user.watchlist, 'online');
  const offline = h.collect(watcher.user.watchlist, 'offline');
  watcher.signin();

  // On sign-in the watcher learns the current state: both watched users are offline.
  await offline.atLeast(1, 'initial watchlist state');
  assert.equal(offline.list[0].data.name, 'offline');
  assert.deepEqual([...offline.list[0].data.user_ids].sort(), [watched, alsoWatched].sort());
  assert.equal(online.list.length, 0);

  const w1 = await signedIn(t, { id: watched });
  await online.atLeast(1, `online for ${watched}`);
  assert.deepEqual(online.list[0].data, { name: 'online', user_ids: [watched] });

  // A second socket of the same user is not a new "online".
  const w2 = await signedIn(t, { id: watched });
  await h.sleep(h.QUIET_MS);
  assert.equal(online.list.length, 1);

  w1.disconnect();
  await h.sleep(h.QUIET_MS);
  assert.equal(offline.list.length, 1, 'offline while the user still has a socket');
  w2.disconnect();
  await offline.atLeast(2, `offline for ${watched}`);
  assert.deepEqual(offline.list[1].data, { name: 'offline', user_ids: [watched] });
});

test('watchlist: a watched user already online is reported online at sign-in', T, async (t) => {
  const watched = h.uniq('early');
  await signedIn(t, { id: watched });
  const watcher = await h.connect(t, { userData: { id: h.uniq('late-watcher'), watchlist: [watched] } });
  const online = h.once(watcher.user.watchlist, 'online');
  watcher.signin();
  assert.deepEqual((await online).data, { name: 'online', user_ids: [watched] });
});

test('terminateUserConnections disconnects every socket of the user', T, async (t) => {
  const sdk = h.serverSDK();
  const id = h.uniq('doomed');
  const a = await signedIn(t, { id });
  const b = await signedIn(t, { id });
  const bystander = await signedIn(t, { id: h.uniq('bystander') });

  const errA = h.onceWhere(a.connection, 'error', (e) => e && e.data && e.data.code === 4009, 'pusher:error 4009 at A');
  const goneA = h.waitFor(() => a.connection.state === 'disconnected', 'A disconnected');
  const goneB = h.waitFor(() => b.connection.state === 'disconnected', 'B disconnected');
  const res = await h.json(sdk.terminateUserConnections(id));
  assert.equal(typeof res, 'object');
  await errA;
  await goneA;
  await goneB;
  // 4009 is a "refused" close: pusher-js must not reconnect by itself.
  await h.sleep(h.QUIET_MS);
  assert.equal(a.connection.state, 'disconnected');
  assert.equal(bystander.connection.state, 'connected');
});

test('terminateUserConnections also ends presence-only members of that user id', T, async (t) => {
  const sdk = h.serverSDK();
  const id = h.uniq('presence-user');
  const room = h.uniq('presence-terminate');
  const member = await h.connect(t, { user: { user_id: id, user_info: {} } });
  const observer = await h.connect(t, { user: { user_id: h.uniq('observer'), user_info: {} } });
  await h.subscribe(member, room);
  const { channel: obs } = await h.subscribe(observer, room);
  const removed = h.once(obs, 'pusher:member_removed', `member_removed for ${id}`);
  await sdk.terminateUserConnections(id);
  await h.waitFor(() => member.connection.state === 'disconnected', 'member disconnected');
  assert.equal((await removed).data.id, id);
});
