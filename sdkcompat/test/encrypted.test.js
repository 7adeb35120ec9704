'use strict';
// End-to-end encrypted channels: the `pusher` SDK encrypts with its master key, pushwire only
// relays ciphertext, pusher-js decrypts with the shared_secret returned by authorizeChannel.

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('../lib/helpers');

const T = { timeout: 20000 };

test('private-encrypted: SDK trigger is decrypted by pusher-js, server sees only ciphertext', T, async (t) => {
  const sdk = h.serverSDK({ encryptionMasterKeyBase64: h.randomMasterKey() });
  const client = await h.connect(t, { signer: sdk });
  const name = h.uniq('private-encrypted-vault');
  const { channel } = await h.subscribe(client, name);
  assert.equal(channel.subscribed, true);

  const raw = h.onceWhere(client.connection, 'message', (m) => m.channel === name && m.event === 'secret', `raw frame on ${name}`);
  const got = h.once(channel, 'secret', `decrypted secret on ${name}`);
  const payload = { msg: 'top secret', n: 7, list: [1, 2, 3] };
  await sdk.trigger(name, 'secret', payload);
  const frame = (await raw).data;
  assert.equal(frame.channel, name);
  assert.equal(typeof frame.data.nonce, 'string', `wire data: ${JSON.stringify(frame.data)}`);
  assert.equal(typeof frame.data.ciphertext, 'string');
  assert.ok(!JSON.stringify(frame).includes('top secret'), 'plaintext must not travel');
  assert.deepEqual((await got).data, payload);
});

test('private-encrypted: triggerBatch is decrypted too', T, async (t) => {
  const sdk = h.serverSDK({ encryptionMasterKeyBase64: h.randomMasterKey() });
  const client = await h.connect(t, { signer: sdk });
  const name = h.uniq('private-encrypted-batch');
  const { channel } = await h.subscribe(client, name);
  const got = h.collect(channel, 'b');
  await sdk.triggerBatch([
    { channel: name, name: 'b', data: { i: 1 } },
    { channel: name, name: 'b', data: { i: 2 } },
  ]);
  await got.atLeast(2);
  assert.deepEqual(got.list.map((e) => e.data), [{ i: 1 }, { i: 2 }]);
});

test('private-encrypted: pusher-js refuses client events (never sent to the server)', T, async (t) => {
  const sdk = h.serverSDK({ encryptionMasterKeyBase64: h.randomMasterKey() });
  const client = await h.connect(t, { signer: sdk });
  const { channel } = await h.subscribe(client, h.uniq('private-encrypted-noclient'));
  assert.throws(() => channel.trigger('client-x', {}), /not supported|encrypted/i);
});
