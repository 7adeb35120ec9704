package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// RedisIdempotency keeps publish idempotency keys in Redis, so every node of a cluster
// sees the keys the others claimed. It implements httpapi.Idempotency (the methods below
// match it; this package does not import httpapi).
//
// A key is one Redis string "{prefix}:idem:{app}:{key}": "p" while the publish that claimed
// it runs (SET NX with the TTL, so a node dying mid-publish frees it when the TTL ends),
// then "d" followed by the stored answer.
type RedisIdempotency struct {
	client *redis.Client
	prefix string
}

// NewRedisIdempotency connects to the Redis at url (redis.ParseURL) and checks it answers
// within ctx. prefix defaults to DefaultPrefix.
func NewRedisIdempotency(ctx context.Context, url, prefix string) (*RedisIdempotency, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("cluster: idempotency redis url: %w", err)
	}
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	o.ContextTimeoutEnabled = true
	c := redis.NewClient(o)
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("cluster: idempotency redis %s: ping: %w", o.Addr, err)
	}
	return &RedisIdempotency{client: c, prefix: prefix}, nil
}

func (r *RedisIdempotency) key(appID, key string) string {
	return r.prefix + ":idem:" + appToken(appID) + ":" + key
}

// Claim reserves key for ttl (SET NX). It returns the stored answer when a publish with
// this key completed (done), claimed when the caller now owns the key, and neither while
// another request (on any node) holds it.
func (r *RedisIdempotency) Claim(ctx context.Context, appID, key string, ttl time.Duration) ([]byte, bool, bool, error) {
	k := r.key(appID, key)
	ok, err := r.client.SetNX(ctx, k, "p", ttl).Result()
	if err != nil {
		return nil, false, false, fmt.Errorf("cluster: idempotency claim: %w", err)
	}
	if ok {
		return nil, false, true, nil
	}
	v, err := r.client.Get(ctx, k).Bytes()
	switch {
	case errors.Is(err, redis.Nil): // expired or released between the two commands: retry once
		ok, err := r.client.SetNX(ctx, k, "p", ttl).Result()
		if err != nil {
			return nil, false, false, fmt.Errorf("cluster: idempotency claim: %w", err)
		}
		return nil, false, ok, nil
	case err != nil:
		return nil, false, false, fmt.Errorf("cluster: idempotency read: %w", err)
	case len(v) > 0 && v[0] == 'd':
		return v[1:], true, false, nil
	}
	return nil, false, false, nil
}

// Complete stores the answer of the publish that claimed key, for ttl.
func (r *RedisIdempotency) Complete(ctx context.Context, appID, key string, answer []byte, ttl time.Duration) error {
	v := make([]byte, 0, 1+len(answer))
	v = append(append(v, 'd'), answer...)
	if err := r.client.Set(ctx, r.key(appID, key), v, ttl).Err(); err != nil {
		return fmt.Errorf("cluster: idempotency complete: %w", err)
	}
	return nil
}

// releaseScript deletes the key only while it is still a claim, never a stored answer.
var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == "p" then return redis.call("DEL", KEYS[1]) end return 0`)

// Release forgets a claimed key whose publish failed, so a retry can publish.
func (r *RedisIdempotency) Release(ctx context.Context, appID, key string) error {
	if err := releaseScript.Run(ctx, r.client, []string{r.key(appID, key)}).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("cluster: idempotency release: %w", err)
	}
	return nil
}

// Close releases the connection pool.
func (r *RedisIdempotency) Close() error {
	if err := r.client.Close(); err != nil {
		return fmt.Errorf("cluster: idempotency close: %w", err)
	}
	return nil
}
