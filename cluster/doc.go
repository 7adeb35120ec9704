// Package cluster implements replication.Broker, the transport that carries opaque envelopes
// between the nodes of a pushwire cluster:
//
//   - Local: in-process. A Local on its own is a single node (its publishes reach nobody);
//     several Locals made from one LocalBus form a cluster inside one process, for tests.
//   - Redis: Redis pub/sub through github.com/redis/go-redis/v9.
//   - NATS: NATS core pub/sub through github.com/nats-io/nats.go.
//
// cluster/clustertest is the conformance suite every implementation passes. replication.Start
// (replication/node.go) is what uses them; cmd/pushwire wires one in with --cluster redis or
// --cluster nats. RedisIdempotency shares the HTTP publish idempotency keys between nodes.
//
// # Addressing
//
// Each app has its own pub/sub channel: "{prefix}:{app}" on Redis (one PSUBSCRIBE
// "{prefix}:*" per node) and "{prefix}.{app}" on NATS (one subscription "{prefix}.>" per
// node). {app} is the app id itself when it consists only of ASCII letters, digits, '_' and
// '-', and otherwise "~" followed by the unpadded base64url form of the id, so any app id is
// a single safe NATS token and never a Redis glob. The default prefix is "pushwire"; tests
// give each cluster its own prefix so that clusters sharing one server do not see each other.
//
// # Framing
//
// Every pub/sub message is one frame:
//
//	frame    = kind:byte  uvarint(len(node))  node  body
//	kind 1   body = envelope                                  (the whole envelope)
//	kind 2   body = uvarint(seq) uvarint(index) uvarint(count) chunk   (NATS only)
//
// node is the sending node's id: a node drops frames carrying its own id, so it never sees
// its own envelopes (NATS additionally asks the server not to echo them). Kind 2 splits an
// envelope larger than the NATS server's max_payload (1 MiB by default) into count chunks
// published back to back under the node's publish lock; seq numbers the node's fragmented
// envelopes so a receiver that lost a chunk drops that envelope instead of splicing two.
// Frames are binary-safe: envelopes may hold any bytes, including none.
//
// # Guarantees
//
// Delivery is at most once: pub/sub keeps nothing for a node that is disconnected, and a
// Publish that returns an error may or may not have been delivered (the clients are set not
// to retry a publish, which could deliver it twice). Envelopes published one after another by
// one node (each Publish returning before the next starts) reach every other node in that
// order; envelopes from different nodes, or from concurrent Publish calls, are interleaved in
// no particular order. Each node hands envelopes to its handler one at a time from a single
// goroutine, with a freshly allocated env the handler may keep.
//
// # Failures
//
// The Redis and NATS brokers reconnect forever (Redis with capped exponential backoff, NATS
// through nats.go's own reconnect loop) and resubscribe without help; Healthy reports false from the moment the loss is noticed until
// the subscription is confirmed again, so Healthy true means envelopes published by other
// nodes from then on will arrive. While disconnected, Publish fails fast (NATS: at once, no
// reconnect buffer; Redis: as soon as the dial fails, and never later than ctx allows)
// rather than queueing, so the caller can fall back to local delivery.
package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// ErrClosed is returned by Publish and Start on a broker that has been closed.
var ErrClosed = errors.New("cluster: broker closed")

// DefaultPrefix is the channel (Redis) or subject (NATS) prefix used when none is set.
const DefaultPrefix = "pushwire"

// Frame kinds, the first byte of every frame.
const (
	kindWhole    byte = 1
	kindFragment byte = 2
)

// newNodeID returns a random 16-hex-digit node id.
func newNodeID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// appToken returns the channel/subject suffix for appID (see the package doc).
func appToken(appID string) string {
	for i := 0; i < len(appID); i++ {
		c := appID[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return "~" + base64.RawURLEncoding.EncodeToString([]byte(appID))
		}
	}
	return appID
}

// appFromToken reverses appToken.
func appFromToken(tok string) (string, error) {
	if len(tok) > 0 && tok[0] == '~' {
		b, err := base64.RawURLEncoding.DecodeString(tok[1:])
		if err != nil {
			return "", fmt.Errorf("cluster: app token %q: %w", tok, err)
		}
		return string(b), nil
	}
	if tok == "" {
		return "", errors.New("cluster: empty app token")
	}
	return tok, nil
}

// checkAppID rejects the empty app id, which no pushwire app has.
func checkAppID(appID string) error {
	if appID == "" {
		return errors.New("cluster: publish: empty app id")
	}
	return nil
}

// appendHeader appends kind, then node as a length-prefixed string.
func appendHeader(dst []byte, kind byte, node string) []byte {
	dst = append(dst, kind)
	dst = binary.AppendUvarint(dst, uint64(len(node)))
	return append(dst, node...)
}

// encodeWhole frames a whole envelope.
func encodeWhole(node string, env []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(node)+len(env))
	return append(appendHeader(b, kindWhole, node), env...)
}

// frame is a decoded frame. For kindWhole, body is the envelope; for kindFragment, body is
// the chunk and seq/index/count place it.
type frame struct {
	kind              byte
	node              string
	seq, index, count uint64
	body              []byte
}

var errShortFrame = errors.New("cluster: truncated frame")

// decodeFrame parses b; body aliases b.
func decodeFrame(b []byte) (frame, error) {
	var f frame
	if len(b) < 1 {
		return f, errShortFrame
	}
	f.kind, b = b[0], b[1:]
	if f.kind != kindWhole && f.kind != kindFragment {
		return f, fmt.Errorf("cluster: unknown frame kind %d", f.kind)
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return f, errShortFrame
	}
	f.node, b = string(b[k:k+int(n)]), b[k+int(n):]
	if f.kind == kindFragment {
		for _, p := range []*uint64{&f.seq, &f.index, &f.count} {
			v, k := binary.Uvarint(b)
			if k <= 0 {
				return f, errShortFrame
			}
			*p, b = v, b[k:]
		}
		if f.count == 0 || f.index >= f.count {
			return f, fmt.Errorf("cluster: fragment %d of %d", f.index, f.count)
		}
	}
	f.body = b
	return f, nil
}

// backoff returns the delay before reconnect attempt n (0-based): min doubled per attempt,
// capped at max.
func backoff(n int, min, max time.Duration) time.Duration {
	d := min
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}
