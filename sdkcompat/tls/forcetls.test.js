'use strict';
// pusher-js with forceTLS: true over wss:// and the `pusher` SDK with useTLS: true over https://
// against a pushwire started with a self-signed certificate that the Go driver trusts through
// NODE_EXTRA_CA_CERTS. Run by sdkcompat/tls_test.go, not by the plain suite.
const test = require('node:test');
const assert = require('node:assert');
const https = require('node:https');
const PusherJS = require('pusher-js');
const PusherServer = require('pusher');

const HOST = process.env.PUSHWIRE_HOST || '127.0.0.1';
const PORT = Number(process.env.PUSHWIRE_TLS_PORT);

test('pusher-js forceTLS receives an event published by the pusher SDK over https', async (t) => {
  assert.ok(PORT > 0, 'PUSHWIRE_TLS_PORT is set');
  const client = new PusherJS('app-key', {
    wsHost: HOST, wssPort: PORT, forceTLS: true, enabledTransports: ['wss', 'ws'],
    cluster: 'mt1', disableStats: true,
  });
  const agent = new https.Agent({ keepAlive: false });
  const server = new PusherServer({
    appId: 'app-id', key: 'app-key', secret: 'app-secret',
    host: HOST, port: String(PORT), useTLS: true, agent, timeout: 5000,
  });
  t.after(() => client.disconnect());
  const received = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no event over wss within 5 s')), 5000);
    const channel = client.subscribe('secure-orders');
    channel.bind('pusher:subscription_succeeded', async () => {
      try {
        const res = await server.trigger('secure-orders', 'order.shipped', { id: 'ord_tls' });
        assert.strictEqual(res.status, 200);
      } catch (err) { reject(err); }
    });
    channel.bind('order.shipped', (data) => { clearTimeout(timer); resolve(data); });
  });
  assert.deepStrictEqual(await received, { id: 'ord_tls' });
  assert.strictEqual(client.connection.state, 'connected');
  assert.match(client.connection.socket_id, /^\d+\.\d+$/);
});
