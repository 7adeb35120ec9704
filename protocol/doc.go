// Package protocol is pushwire's pure wire layer: it owns the Pusher (and, later, V2) frame
// envelope and its JSON codec, event-name prefixes, protocol error and close codes as typed
// values, channel-name classes and validation, socket ids, and every HMAC signature the
// protocol uses (channel auth, presence auth, user sign-in, HTTP API requests).
//
// It performs no I/O and imports no other pushwire package. Every parser here has a fuzz target.
package protocol
