'use strict';
// Mutable messages driven by the official `pusher` Node SDK (trigger, then signed post()/get()
// on the messages routes), with a real pusher-js (protocol 7) subscriber: it receives the
// create as a plain event and never a mutation.

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('../lib/helpers');

const T = { timeout: 20000 };

test('create, append, update and read a mutable message; pusher-js sees only the create', T, async (t) => {
  const sdk = h.serverSDK();
  const channel = h.uniq('chat-mutable');
  const client = await h.connect(t);
  const { channel: ch } = await h.subscribe(client, channel);
  const events = h.collect(ch, 'chat.message');
  const all = [];
  ch.bind_global((event) => all.push(event));

  const created = await h.json(sdk.trigger(channel, 'chat.message', 'hello'));
  const c = created.channels[channel];
  assert.ok(c && c.message_serial && c.acknowledgement_id === c.message_serial, JSON.stringify(created));
  assert.equal(c.version_serial, c.message_serial);
  assert.equal(c.delivery_serial, c.history_serial);
  const [first] = await events.atLeast(1, 'the create on pusher-js');
  assert.equal(first.data, 'hello');

  const path = `/channels/${channel}/messages/${encodeURIComponent(c.message_serial)}`;
  const appended = await h.json(sdk.post({ path: `${path}/append`, body: { data: ' world', op_id: 'op-1' } }));
  assert.equal(appended.status, 'applied');
  assert.equal(appended.delivery_serial, c.delivery_serial + 1);
  assert.ok(appended.version_serial > c.version_serial);
  const retried = await h.json(sdk.post({ path: `${path}/append`, body: { data: ' world', op_id: 'op-1' } }));
  assert.equal(retried.status, 'duplicate');
  assert.equal(retried.version_serial, appended.version_serial);
  const updated = await h.json(sdk.post({ path: `${path}/update`, body: { data: 'hello world!', description: 'punctuation' } }));
  assert.equal(updated.action, 'update');

  const got = await h.json(sdk.get({ path }));
  assert.equal(got.item.data, 'hello world!');
  assert.equal(got.item.action, 'update');
  assert.equal(got.item.version.description, 'punctuation');
  const versions = await h.json(sdk.get({ path: `${path}/versions`, params: { direction: 'oldest_first' } }));
  assert.deepEqual(versions.items.map((v) => [v.action, v.data]), [['create', 'hello'], ['append', ' world'], ['update', 'hello world!']]);

  // Nothing but the create ever reached the protocol 7 client.
  await h.sleep(300);
  assert.deepEqual(all.filter((e) => !e.startsWith('pusher:')), ['chat.message']);

  const refused = await sdk.post({ path: `${path}/append`, body: { data: '' } }).catch((e) => e);
  assert.equal(refused.status, 400);
});
