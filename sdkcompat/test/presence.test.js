'use strict';
// pusher-js presence channels against pushwire, members signed with the official `pusher` SDK.

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('../lib/helpers');

const T = { timeout: 20000 };

function member(id, name) {
  return { user_id: id, user_info: { name } };
}

function ids(members) {
  const out = [];
  members.each((m) => out.push(m.id));
  return out.sort();
}

test('presence: members, me, member_added and member_removed', T, async (t) => {
  const name = h.uniq('presence-room');
  const alice = await h.connect(t, { user: member('alice', 'Alice') });
  const { channel: chA, data: initial } = await h.subscribe(alice, name);
  assert.equal(initial.count, 1);
  assert.equal(chA.members.count, 1);
  assert.deepEqual(chA.members.me, { id: 'alice', info: { name: 'Alice' } });

  const added = h.once(chA, 'pusher:member_added', 'member_added for bob');
  const bob = await h.connect(t, { user: member('bob', 'Bob') });
  const { channel: chB, data: bobView } = await h.subscribe(bob, name);
  assert.deepEqual((await added).data, { id: 'bob', info: { name: 'Bob' } });
  assert.equal(chA.members.count, 2);
  assert.equal(bobView.count, 2);
  assert.deepEqual(ids(chB.members), ['alice', 'bob']);
  assert.deepEqual(chB.members.get('alice'), { id: 'alice', info: { name: 'Alice' } });
  assert.deepEqual(chB.members.me, { id: 'bob', info: { name: 'Bob' } });

  const removed = h.once(chA, 'pusher:member_removed', 'member_removed for bob');
  bob.disconnect();
  assert.deepEqual((await removed).data, { id: 'bob', info: { name: 'Bob' } });
  assert.equal(chA.members.count, 1);
  assert.deepEqual(ids(chA.members), ['alice']);
});

test('presence: numeric user_id is accepted and reported as a string', T, async (t) => {
  const name = h.uniq('presence-numeric');
  const a = await h.connect(t, { user: { user_id: 10, user_info: { n: 1 } } });
  const { channel } = await h.subscribe(a, name);
  assert.equal(channel.members.count, 1);
  assert.equal(String(channel.members.me.id), '10');
  const b = await h.connect(t, { user: { user_id: 'eleven' } });
  const added = h.once(channel, 'pusher:member_added');
  await h.subscribe(b, name);
  assert.deepEqual((await added).data, { id: 'eleven', info: {} });
});

test('presence: the same user on two sockets is one member', T, async (t) => {
  const name = h.uniq('presence-dedup');
  const watcher = await h.connect(t, { user: member('w', 'Watcher') });
  const { channel: chW } = await h.subscribe(watcher, name);
  const addedEvents = h.collect(chW, 'pusher:member_added');
  const removedEvents = h.collect(chW, 'pusher:member_removed');

  const u1 = await h.connect(t, { user: member('dup', 'Dup') });
  await h.subscribe(u1, name);
  await addedEvents.atLeast(1, 'member_added for dup');

  const u2 = await h.connect(t, { user: member('dup', 'Dup') });
  const { channel: ch2, data } = await h.subscribe(u2, name);
  assert.equal(data.count, 2, 'second socket of dup sees two members');
  assert.equal(ch2.members.count, 2);
  await h.sleep(h.QUIET_MS);
  assert.equal(addedEvents.list.length, 1, 'no second member_added for the same user');
  assert.equal(chW.members.count, 2);

  // First socket of dup leaves: dup is still present through the second one.
  u1.disconnect();
  await h.sleep(h.QUIET_MS);
  assert.equal(removedEvents.list.length, 0, 'member_removed while the user still has a socket');
  assert.equal(chW.members.count, 2);

  u2.disconnect();
  await removedEvents.atLeast(1, 'member_removed after the last socket of dup');
  assert.deepEqual(removedEvents.list[0].data, { id: 'dup', info: { name: 'Dup' } });
  assert.equal(chW.members.count, 1);
});

test('presence: client events carry metadata.user_id of the sender', T, async (t) => {
  const name = h.uniq('presence-chat');
  const a = await h.connect(t, { user: member('sender-1', 'S') });
  const b = await h.connect(t, { user: member('receiver-1', 'R') });
  const { channel: chA } = await h.subscribe(a, name);
  const { channel: chB } = await h.subscribe(b, name);
  const echoed = h.expectNothing(chA, 'client-typing', 'client event echoed to its sender', 800);
  const got = h.once(chB, 'client-typing');
  chA.trigger('client-typing', { typing: true });
  const { data, metadata } = await got;
  assert.deepEqual(data, { typing: true });
  assert.equal(metadata.user_id, 'sender-1');
  await echoed;
});

test('presence: a wrong signature is refused with subscription_error', T, async (t) => {
  const client = await h.connect(t, {
    user: member('mallory', 'M'),
    signer: h.serverSDK({ secret: 'wrong' }),
  });
  const ch = client.subscribe(h.uniq('presence-locked'));
  const { data } = await h.once(ch, 'pusher:subscription_error');
  assert.equal(data.status, 401);
  assert.equal(client.connection.state, 'connected');
});
