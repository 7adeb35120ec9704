// Package push owns pushwire's push notifications: device registrations, channel
// subscriptions (interests) of devices and users, publishes to devices, users and channels,
// a durable outbound queue of deliveries, the provider clients (APNs, FCM, Web Push) and the
// realtime-to-push bridge. It knows nothing of sockets: the HTTP layer (httpapi) serves
// Sockudo's /apps/{id}/push/* routes on top of Service, and the bridge asks a Presence
// (*channels.Hub) whether a user is live on a channel.
//
// # Model
//
// A Device is reached through one Platform: APNs (a hex device token), FCM (a registration
// token) or Web (a browser PushSubscription: https endpoint, p256dh, auth). Registration
// bodies take Sockudo's DeviceDetails shape (push.recipient.transportType apns | gcm | web)
// or the short form {platform: apns|fcm|web, token | subscription}. The first registration
// (by a request signed with the app secret) issues a device identity token, stored only as a
// SHA-256 hash (identity.go says why not PBKDF2); with it a device reads, updates and deletes
// its own registration and manages its own interests without the app secret.
//
// A Subscription puts a device, or every device of a user (clientId), on a channel. A
// publish names devices, users (client) and channels; it is accepted (202) after its payload
// was rendered for every provider and checked against each limit (APNs 4096 bytes, FCM 4096,
// Web Push 3993 plaintext bytes so the aes128gcm record stays within 4096), then stored.
//
// # The queue
//
// Publishing is always asynchronous. The planner claims a due publish (scheduled ones wait
// for notBeforeMs; cancelled ones never run) and expands its targets page by page
// (planPage recipients at a time, saving a cursor) into Deliveries, one per device, so a
// publish to 100,000 devices never holds more than one page. The dispatcher claims due
// deliveries in batches under a lease, sends them through the app's providers (at most
// Options.Concurrency at once, within the app's rate limit), and records each outcome:
// delivered; retried after an exponential backoff (retry_initial_backoff doubling up to
// retry_max_backoff, or the provider's Retry-After) for 5xx, 429 and network errors, until
// retry_for or max_attempts; failed for good on a permanent answer, the device removed when
// the provider says the token is gone (APNs 410/BadDeviceToken, FCM UNREGISTERED, Web Push
// 404/410). Failures go to the FailureObserver (the push_delivery_failed webhook) and every
// outcome to Metrics. A node that dies mid-work leaves leased work that another node (or the
// restarted one) reclaims once the lease lapses: nothing accepted is lost with the Postgres
// store. Delivery is at least once across such a crash.
//
// Finished publishes, with their per-recipient results and receipts, are deleted after
// Options.Retention (7 days by default).
//
// Store has two implementations passing one conformance suite (pushtest.Run): Memory (the
// default) and Postgres (its own embedded migrations, FOR UPDATE SKIP LOCKED claims, one
// statement per finished batch).
//
// # Providers
//
// Maintained libraries do the provider protocols where one fits:
//   - APNs: github.com/sideshow/apns2 (HTTP/2, ES256 provider tokens from a .p8 key).
//   - Web Push: github.com/SherClockHolmes/webpush-go (VAPID, RFC 8291 aes128gcm).
//   - FCM: golang.org/x/oauth2/google obtains and caches the service-account access token;
//     the HTTP v1 send itself (one JSON POST) is written here, because the only maintained
//     Go client for it, firebase.google.com/go, brings the whole Firebase Admin SDK and
//     Google Cloud client stack for that one call.
//
// Every endpoint is configurable (apps[].push.*.endpoint, ca_file), so tests run against
// the fakes of package pushtest, which speak each provider's protocol.
//
// # Bridge
//
// bridge.go: a realtime publish is pushed to the channel's subscribed users with no live
// socket on it, when the app enables it; extras.push pushes to every subscriber. The hook
// only queues, so a publish never waits on push.
package push
