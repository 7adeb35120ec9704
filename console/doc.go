// Package console is the operator's debug console: a web page served by pushwire itself
// (static files embedded with embed, dependency-free JavaScript, no build step) that shows
// one app live — its connections, occupied channels and presence members, an event log of
// connections, subscriptions, client events, server-side publishes, webhooks, errors and
// slow-consumer closes, filterable by channel and event — and publishes a test event from a
// form. It is off unless configured (config.Config.Console), and cmd/pushwire mounts
// Console.Handler on the metrics listener or under a path of the main port.
//
// Sign-in is per app: the app id and its console token (config.App.ConsoleToken) or, when it
// has none, its secret. There is no unauthenticated mode on any address. A successful
// sign-in sets an HttpOnly, SameSite=Strict cookie holding the app id, an expiry and an HMAC
// keyed by a per-process random key over both and the credential, so a restart or a changed
// credential signs everyone out. State-changing requests (sign-in, publish) must be JSON and,
// when the browser sends an Origin, same-origin, so another site cannot forge them. Failed
// sign-ins are limited per minute for the whole node.
//
// Live updates go over Server-Sent Events (GET api/stream): a snapshot of the app every
// Options.SnapshotInterval and each Activity as it happens. Console implements channels.Tap:
// Watching is one atomic load while nobody watches, so the hub and the gateway build
// nothing; each viewer has a bounded queue (Options.ViewerBuffer) and an activity that finds
// it full is dropped and counted for that viewer ("dropped" event), so a slow browser never
// slows a publisher. The stream's writes have a deadline; a viewer that cannot take them is
// disconnected.
package console
