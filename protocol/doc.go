// Package protocol is pushwire's pure wire layer: it owns the Pusher (and, later, V2) frame
// envelope and its JSON codec, event-name prefixes, protocol error and close codes as typed
// values, channel-name classes and validation, socket ids, and every HMAC signature the
// protocol uses (channel auth, presence auth, user sign-in, HTTP API requests), V2
// subscription options: tag/event filters and JMESPath filter expressions (filterexpr.go,
// evaluated with github.com/jmespath-community/go-jmespath over Sockudo's message
// projection), wildcard patterns and [meta] metachannel names (wildcard.go), and the
// algorithm list of enable_delta_compression (deltaopt.go).
//
// It performs no I/O and imports no other pushwire package but its generated protobuf schema
// (protocol/wirepb). Every parser here has a fuzz target.
//
// # Binary wire formats
//
// A V2 connection may ask for format=messagepack (msgpack) or format=protobuf (proto); its
// frames are then binary WebSocket messages. pushwire builds every frame as its V2 JSON
// envelope and transcodes it member by member (Encode); inbound binary messages decode into
// the Frame a JSON message gives (DecodeBinary), so the rest of the server is format-blind.
//
//   - MessagePack (github.com/vmihailenco/msgpack/v5): the 15-element positional array of
//     ws-protocol §0 (nil for absent members), data tagged ["string", s] for a JSON string
//     and ["json", text] for any other value, extras as a map {headers, ephemeral,
//     idempotency_key, echo, ai} with header values tagged ["string"|"number"|"bool", v].
//     Both sockudo-js and sockudo_flutter decode exactly that (extras as a map, not Sockudo's
//     positional struct, which neither client reads). Inbound, the array or a map keyed by
//     member name, and data tagged string, json or structured, are accepted.
//   - Protobuf (google.golang.org/protobuf, wirepb): Sockudo's field numbers (which sockudo-js
//     uses) by default; sockudo_flutter numbers envelope fields 10-15 differently in its own
//     wire.proto, so a connection whose URL says client=flutter (sockudo_flutter always sends
//     it) gets and is read with that layout (FormProtobufFlutter). Scalar members use explicit
//     presence, so __delta_seq 0 and an empty stream's serial 0 are on the wire.
//
// Both formats carry only what their schemas have: extras members other than headers,
// ephemeral, idempotency_key, echo and ai are left out (as Sockudo does); binary data is
// refused inbound (pushwire's messages are JSON); an unknown member or field, a member of the
// wrong type, trailing bytes and invalid UTF-8 are 4000 errors naming the problem.
//
// Delta compression needs the exact text the client keeps as a base, and a binary client
// does not keep the bytes it received: it keeps its own JSON rendering of the decoded
// envelope, with its own member order (sockudo-js protobuf even drops name and tags), number
// formatting (Dart writes 1.0 where JavaScript writes 1), object-key order (JavaScript puts
// integer keys first) and "serial" normalisation. ClientText reproduces that text for each
// client and format; it says when it cannot be sure, and such a frame is never used as a base.
// The codecs are the maintained libraries above; ClientText is ours because no library
// models what a particular client does after decoding.
package protocol
