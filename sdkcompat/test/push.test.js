'use strict';
// The push API (/apps/{id}/push/*) through the official `pusher` Node SDK's signed get() and
// post(), and the unsigned requests a device makes with its identity token, shaped as
// sockudo-js's SockudoPushRegistration sends them (fetch, Content-Type application/json,
// X-Sockudo-Device-Identity-Token). The default app has push on and no provider
// credentials, so deliveries fail with a reason naming the missing credentials.

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('../lib/helpers');

const T = { timeout: 20000 };
const BASE = `http://${h.HOST}:${h.PORT}/apps/${h.APP_ID}/push`;

test('devices, interests, publish and status with the signed Node SDK', T, async () => {
  const sdk = h.serverSDK();
  const id = h.uniq('node-dev');
  const reg = await h.json(sdk.post({
    path: '/push/deviceRegistrations',
    body: {
      id, clientId: 'node-user', formFactor: 'phone', platform: 'android', timezone: 'UTC', locale: 'en',
      push: { recipient: { transportType: 'gcm', registrationToken: `tok-${id}` } },
    },
  }));
  assert.equal(reg.change, 'inserted');
  assert.equal(reg.device.id, id);
  assert.equal(reg.device.recipient.transportType, 'gcm');
  assert.equal(reg.deviceIdentityToken.length, 43);

  const got = await h.json(sdk.get({ path: `/push/deviceRegistrations/${id}` }));
  assert.equal(got.clientId, 'node-user');
  assert.equal(got.pushState, 'ACTIVE');

  const channel = h.uniq('orders');
  const sub = await h.json(sdk.post({ path: '/push/channelSubscriptions', body: { channel, deviceId: id } }));
  assert.deepEqual({ channel: sub.channel, deviceId: sub.deviceId, provider: sub.provider }, { channel, deviceId: id, provider: 'fcm' });
  // The Node SDK signs parameter names as given and the server lowercases them (Pusher's
  // rule), so names go lowercase; the server reads them in any case.
  const subs = await h.json(sdk.get({ path: '/push/channelSubscriptions', params: { deviceid: id } }));
  assert.deepEqual(subs.items.map((s) => s.channel), [channel]);
  assert.equal(subs.has_more, false);

  const res = await sdk.post({
    path: '/push/publish',
    body: { recipients: [{ type: 'channel', channel }], payload: { title: 'Order', body: 'Shipped' }, sync: false },
  });
  assert.equal(res.status, 202);
  const acc = JSON.parse(await res.text());
  assert.ok(acc.publish_id && acc.publish_id === acc.publishId, JSON.stringify(acc));

  let status;
  await h.waitFor(async () => {
    status = await h.json(sdk.get({ path: `/push/publish/${acc.publish_id}/status` }));
    return status.state === 'failed';
  }, 'the delivery outcome');
  assert.equal(status.recipients.length, 1);
  assert.match(status.recipients[0].reason, /no FCM credentials configured/);
});

test('a device manages itself with its identity token, as sockudo-js sends it', T, async () => {
  const sdk = h.serverSDK();
  const id = h.uniq('self-dev');
  const reg = await h.json(sdk.post({ path: '/push/deviceRegistrations', body: { id, clientId: 'me', platform: 'fcm', token: `tok-${id}` } }));
  const headers = { 'X-Sockudo-Device-Identity-Token': reg.deviceIdentityToken, 'Content-Type': 'application/json' };

  let r = await fetch(`${BASE}/deviceRegistrations/${encodeURIComponent(id)}`, { method: 'GET', headers });
  assert.equal(r.status, 200);
  r = await fetch(`${BASE}/deviceRegistrations`, {
    method: 'POST', headers,
    body: JSON.stringify({ id, clientId: 'me', formFactor: 'phone', platform: 'android', timezone: 'UTC', locale: 'en', push: { recipient: { transportType: 'gcm', registrationToken: 'rotated-token' } } }),
  });
  assert.equal(r.status, 201);
  assert.equal((await r.json()).change, 'updated');
  r = await fetch(`${BASE}/channelSubscriptions`, { method: 'POST', headers, body: JSON.stringify({ channel: 'news', deviceId: id }) });
  assert.equal(r.status, 201);
  r = await fetch(`${BASE}/channelSubscriptions?deviceId=${encodeURIComponent(id)}&limit=10`, { method: 'GET', headers });
  assert.deepEqual((await r.json()).items.map((s) => s.channel), ['news']);
  r = await fetch(`${BASE}/publish`, { method: 'POST', headers, body: JSON.stringify({ recipients: [{ type: 'device', deviceId: id }], payload: { title: 'x' }, sync: false }) });
  assert.equal(r.status, 403);
  r = await fetch(`${BASE}/deviceRegistrations/${encodeURIComponent(id)}`, { method: 'GET', headers: { 'X-Sockudo-Device-Identity-Token': 'A'.repeat(43) } });
  assert.equal(r.status, 401);
  assert.equal((await r.json()).code, 'auth_failed');
  r = await fetch(`${BASE}/deviceRegistrations/${encodeURIComponent(id)}`, { method: 'DELETE', headers });
  assert.equal(r.status, 204);
});

test('bad input gets a clear error from the SDK', T, async () => {
  const sdk = h.serverSDK();
  await assert.rejects(
    sdk.post({ path: '/push/deviceRegistrations', body: { id: 'x', platform: 'symbian', token: 't' } }),
    (err) => err.status === 400 && /unknown platform/.test(err.body),
  );
  await assert.rejects(
    sdk.post({ path: '/push/publish', body: { recipients: [{ type: 'device', deviceId: 'x' }], payload: { body: 'x'.repeat(4090) } } }),
    (err) => err.status === 413 && /APNs accepts at most 4096/.test(err.body),
  );
});
