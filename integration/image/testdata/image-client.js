'use strict';
// Used by TestContainerImage: pusher-js connects to the pushwire running in a container,
// subscribes, has the official `pusher` server SDK publish once the subscription is
// acknowledged, and exits 0 when the event arrives (1 on an error or after 20 s).
// Modules come from sdkcompat/node_modules (NODE_PATH).
const PusherJS = require('pusher-js');
const PusherServer = require('pusher');

const host = process.env.PUSHWIRE_HOST;
const port = Number(process.env.PUSHWIRE_PORT);
const channel = process.env.CHANNEL;

const timer = setTimeout(() => {
  console.error('timed out waiting for the event');
  process.exit(1);
}, 20000);

const client = new PusherJS('app-key', {
  wsHost: host, wsPort: port, forceTLS: false, enabledTransports: ['ws'], cluster: 'mt1', disableStats: true,
});
client.connection.bind('error', (e) => console.error('connection error', JSON.stringify(e)));
const ch = client.subscribe(channel);
ch.bind('pusher:subscription_succeeded', () => {
  console.log('subscribed');
  const server = new PusherServer({ appId: 'app-id', key: 'app-key', secret: process.env.APP_SECRET, host, port: String(port), useTLS: false });
  server.trigger(channel, 'image.check', { through: 'container' }).catch((e) => {
    console.error('trigger failed', e);
    process.exit(1);
  });
});
ch.bind('image.check', (data) => {
  console.log('received ' + JSON.stringify(data));
  clearTimeout(timer);
  client.disconnect();
  process.exit(data && data.through === 'container' ? 0 : 1);
});
