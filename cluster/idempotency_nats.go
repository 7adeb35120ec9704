package cluster

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSIdempotency keeps publish idempotency keys in a JetStream key-value bucket, so every
// node of a NATS cluster sees the keys the others claimed. It implements
// httpapi.Idempotency. The NATS server must run with JetStream enabled.
//
// An entry is the state byte ('p' claimed, 'd' done), the expiry in Unix milliseconds (8
// bytes, big-endian) and, when done, the stored answer. Claims are atomic: Create succeeds
// for one node only, and an expired entry is taken over with a revision-checked Update. The
// bucket's TTL (the longest idempotency TTL of any app) purges old entries.
type NATSIdempotency struct {
	nc  *nats.Conn
	kv  jetstream.KeyValue
	now func() time.Time
}

// NewNATSIdempotency connects to url and creates (or updates) the bucket named after
// prefix, keeping entries at most maxTTL.
func NewNATSIdempotency(ctx context.Context, url, prefix string, maxTTL time.Duration) (*NATSIdempotency, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if maxTTL < time.Minute {
		maxTTL = time.Minute
	}
	nc, err := nats.Connect(url, nats.Name("pushwire-idempotency"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("cluster: idempotency nats connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: idempotency jetstream: %w", err)
	}
	bucket := strings.NewReplacer(".", "_", ":", "_").Replace(prefix) + "_idempotency"
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, TTL: maxTTL, History: 1,
		Description: "pushwire publish idempotency keys"})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: idempotency bucket %s (is JetStream enabled?): %w", bucket, err)
	}
	return &NATSIdempotency{nc: nc, kv: kv, now: time.Now}, nil
}

func natsIdemKey(appID, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(appID)) + "." + base64.RawURLEncoding.EncodeToString([]byte(key))
}

func natsIdemValue(state byte, expires time.Time, answer []byte) []byte {
	b := make([]byte, 9, 9+len(answer))
	b[0] = state
	binary.BigEndian.PutUint64(b[1:], uint64(expires.UnixMilli()))
	return append(b, answer...)
}

// natsIdemParse splits an entry; ok is false for a malformed one.
func natsIdemParse(v []byte) (state byte, expires time.Time, answer []byte, ok bool) {
	if len(v) < 9 || (v[0] != 'p' && v[0] != 'd') {
		return 0, time.Time{}, nil, false
	}
	return v[0], time.UnixMilli(int64(binary.BigEndian.Uint64(v[1:9]))), v[9:], true
}

// Claim reserves key for ttl. It returns the stored answer when a publish with this key
// completed (done), claimed when the caller now owns the key, and neither while another
// request (on any node) holds it.
func (n *NATSIdempotency) Claim(ctx context.Context, appID, key string, ttl time.Duration) ([]byte, bool, bool, error) {
	k := natsIdemKey(appID, key)
	now := n.now()
	claim := natsIdemValue('p', now.Add(ttl), nil)
	for attempt := 0; attempt < 2; attempt++ {
		_, err := n.kv.Create(ctx, k, claim)
		if err == nil {
			return nil, false, true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, false, false, fmt.Errorf("cluster: idempotency claim: %w", err)
		}
		e, err := n.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue // released meanwhile: claim again
		}
		if err != nil {
			return nil, false, false, fmt.Errorf("cluster: idempotency read: %w", err)
		}
		state, expires, answer, ok := natsIdemParse(e.Value())
		if ok && now.Before(expires) {
			if state == 'd' {
				return answer, true, false, nil
			}
			return nil, false, false, nil
		}
		// Expired (or garbage): take it over unless another node does first.
		if _, err := n.kv.Update(ctx, k, claim, e.Revision()); err != nil {
			return nil, false, false, nil
		}
		return nil, false, true, nil
	}
	return nil, false, false, nil
}

// Complete stores the answer of the publish that claimed key, for ttl.
func (n *NATSIdempotency) Complete(ctx context.Context, appID, key string, answer []byte, ttl time.Duration) error {
	if _, err := n.kv.Put(ctx, natsIdemKey(appID, key), natsIdemValue('d', n.now().Add(ttl), answer)); err != nil {
		return fmt.Errorf("cluster: idempotency complete: %w", err)
	}
	return nil
}

// Release forgets a claimed key whose publish failed, so a retry can publish; a stored
// answer is kept.
func (n *NATSIdempotency) Release(ctx context.Context, appID, key string) error {
	k := natsIdemKey(appID, key)
	e, err := n.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: idempotency release: %w", err)
	}
	if state, _, _, ok := natsIdemParse(e.Value()); ok && state == 'd' {
		return nil
	}
	if err := n.kv.Delete(ctx, k, jetstream.LastRevision(e.Revision())); err != nil {
		return fmt.Errorf("cluster: idempotency release: %w", err)
	}
	return nil
}

// Close releases the connection.
func (n *NATSIdempotency) Close() error {
	n.nc.Close()
	return nil
}
