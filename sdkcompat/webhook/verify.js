'use strict';
// Checks one webhook request with the official `pusher` Node server SDK, the way an app's
// receiver would. Reads from stdin one JSON object
//   {"key", "secret", "body", "signature", "content_type"}
// where body is the exact request body (a UTF-8 string) and signature / content_type are
// the X-Pusher-Signature / Content-Type header values received (content_type defaults to
// application/json). Prints one JSON line:
//   {"valid": <webhook.isValid()>, "time_ms": <getTime()>, "events": <getEvents()>}
// (time_ms and events are null when the SDK cannot parse the body). Exits 0 whenever it
// could run the check; non-zero only on bad input.
//
// Run from anywhere: `pusher` is resolved from ../node_modules (sdkcompat/node_modules).

const Pusher = require('pusher');

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (c) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

async function main() {
  const input = JSON.parse(await readStdin());
  for (const field of ['key', 'secret', 'body', 'signature']) {
    if (typeof input[field] !== 'string') {
      throw new Error(`input.${field} must be a string`);
    }
  }
  const pusher = new Pusher({ appId: 'webhook-check', key: input.key, secret: input.secret });
  const webhook = pusher.webhook({
    headers: {
      'x-pusher-key': input.key,
      'x-pusher-signature': input.signature,
      'content-type': input.content_type === undefined ? 'application/json' : input.content_type,
    },
    rawBody: input.body,
  });
  const out = { valid: webhook.isValid(), time_ms: null, events: null };
  if (webhook.isBodyValid()) {
    out.time_ms = webhook.getTime().getTime();
    out.events = webhook.getEvents();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stderr.write(`verify.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(2);
});
