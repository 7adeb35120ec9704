package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
)

// A publish's message_id (http-api §2, §3.4) is chosen by the publisher. It becomes the
// message_id of the delivered frames (V2) and of the stored message, and it is an idempotent
// create key per channel, as in Sockudo (its "layer B", keyed by app, channel and id):
// within the app's idempotency_ttl a publish repeating a message_id on a channel delivers
// nothing there and gets the first publish's receipt back (acknowledgement_id and serials,
// with fresh counts); the same message_id with another payload (event name, data, tags or
// extras) is a 400; while the first is still being published, a repeat waits a moment, then
// gets 409 with Retry-After: 1. A publish to several channels is idempotent per channel: a
// retry adding a channel delivers there only. A publish that failed frees its keys.
// The keys live in the same Idempotency store as idempotency_key (shared by a cluster's
// nodes), under a SHA-256 of the channel and the id, so they never meet an
// idempotency_key.

// onceReceipt is what the store keeps for a message_id on one channel.
type onceReceipt struct {
	Fingerprint string              `json:"f"`
	Ack         channels.PublishAck `json:"a"`
}

// onceKey is the store key of message_id id on channel.
func onceKey(channel, id string) string {
	h := sha256.New()
	h.Write([]byte(channel))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return "message_id:" + hex.EncodeToString(h.Sum(nil))
}

// fingerprint is the payload identity of a publish: what a repeat of a message_id must
// match.
func fingerprint(ev channels.Event) string {
	b, _ := json.Marshal([]any{ev.Name, ev.Data, ev.Tags, json.RawMessage(nonEmptyJSON(ev.Extras))})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func nonEmptyJSON(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

// onceClaim is the message_id claim of one event: per channel, the receipt of the create
// already made there (replay), or a claim this request holds and must complete or release.
type onceClaim struct {
	fp       string
	key      map[string]string // channel → store key
	replay   map[string]channels.PublishAck
	claimed  []string // channels to publish to, in the event's order
	previous map[string]int
}

// onceSeen remembers the message_id keys an earlier item of the same batch claimed: a
// repeat within the batch is that item's replay (same payload) or a conflict.
type onceSeen map[string]struct {
	fp   string
	item int
}

// claimOnce claims p's message_id on each of its channels. It returns nil when p has no
// message_id. On error nothing stays claimed.
func (a *api) claimOnce(ctx context.Context, app config.App, p *prepared, item int, seen onceSeen) (*onceClaim, *apiError) {
	if p.ev.MessageID == "" {
		return nil, nil
	}
	oc := &onceClaim{fp: fingerprint(p.ev), key: map[string]string{}, replay: map[string]channels.PublishAck{}, previous: map[string]int{}}
	ttl := app.IdempotencyTTL.D()
	for _, ch := range p.ev.Channels {
		if _, twice := oc.key[ch]; twice {
			continue // one create per channel, however often the event names it
		}
		k := onceKey(ch, p.ev.MessageID)
		oc.key[ch] = k
		if prev, ok := seen[k]; ok {
			if prev.fp != oc.fp {
				a.releaseOnce(ctx, app.ID, oc)
				return nil, onceConflict(p.ev.MessageID, ch)
			}
			oc.previous[ch] = prev.item
			continue
		}
		answer, done, claimed, err := a.claimWait(ctx, app.ID, k, ttl)
		switch {
		case err != nil:
			a.releaseOnce(ctx, app.ID, oc)
			return nil, &apiError{http.StatusServiceUnavailable, "service_unavailable", "Idempotency store unavailable: retry later"}
		case done:
			var rc onceReceipt
			if json.Unmarshal(answer, &rc) != nil || rc.Fingerprint != oc.fp {
				a.releaseOnce(ctx, app.ID, oc)
				return nil, onceConflict(p.ev.MessageID, ch)
			}
			rc.Ack.Channel = ch
			oc.replay[ch] = rc.Ack
		case claimed:
			oc.claimed = append(oc.claimed, ch)
		default:
			a.releaseOnce(ctx, app.ID, oc)
			return nil, &apiError{http.StatusConflict, codeInProgress,
				fmt.Sprintf("A publish with message_id %q on channel %q is in progress: retry later", p.ev.MessageID, ch)}
		}
		if seen != nil {
			seen[k] = struct {
				fp   string
				item int
			}{oc.fp, item}
		}
	}
	return oc, nil
}

// codeInProgress is the 409 of a key another request holds.
const codeInProgress = "idempotency_in_progress"

// failOnce answers a refused message_id claim: a key in flight elsewhere gets Retry-After.
func failOnce(w http.ResponseWriter, err *apiError) {
	if err.code == codeInProgress {
		w.Header().Set("Retry-After", "1")
	}
	fail(w, err)
}

func onceConflict(id, channel string) *apiError {
	return badRequest("message_id %q was already used on channel %q with a different payload (name, data, tags or extras)", id, channel)
}

// claimWait claims key, polling a key another request holds like claimKey does.
func (a *api) claimWait(ctx context.Context, appID, key string, ttl time.Duration) ([]byte, bool, bool, error) {
	for i := 0; ; i++ {
		answer, done, claimed, err := a.idem.Claim(ctx, appID, key, ttl)
		if err != nil || done || claimed || i == idemWaits {
			return answer, done, claimed, err
		}
		select {
		case <-ctx.Done():
			return nil, false, false, ctx.Err()
		case <-time.After(idemWaitStep):
		}
	}
}

// releaseOnce frees the keys a failed publish claimed.
func (a *api) releaseOnce(ctx context.Context, appID string, oc *onceClaim) {
	if oc == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, ch := range oc.claimed {
		a.releaseKey(ctx, appID, oc.key[ch])
	}
	oc.claimed = nil
}

// completeOnce stores the receipts of the channels this request published to.
func (a *api) completeOnce(ctx context.Context, app config.App, oc *onceClaim, acks []channels.PublishAck) {
	if oc == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, ack := range acks {
		k, ok := oc.key[ack.Channel]
		if !ok {
			continue
		}
		b, _ := json.Marshal(onceReceipt{Fingerprint: oc.fp, Ack: ack})
		a.completeKey(ctx, app.ID, k, b, app.IdempotencyTTL.D())
	}
	oc.claimed = nil // completed: a later releaseOnce must not free them
}

// publishOnce publishes p to the channels its message_id claim holds (all of them without a
// message_id), tells the push bridge about those, and returns one ack per channel of p, in
// order: fresh ones, replayed ones, and for a repeat within a batch the ack of the earlier
// item (from done, by item index).
func (a *api) publishOnce(ctx context.Context, app config.App, p prepared, oc *onceClaim, done [][]channels.PublishAck) ([]channels.PublishAck, error) {
	if oc == nil {
		acks, err := a.hub.PublishAcksCtx(ctx, app.ID, p.ev)
		if err == nil {
			a.notifyPublished(app.ID, p.ev)
		}
		return acks, err
	}
	var fresh []channels.PublishAck
	if len(oc.claimed) > 0 {
		ev := p.ev
		ev.Channels = oc.claimed
		var err error
		if fresh, err = a.hub.PublishAcksCtx(ctx, app.ID, ev); err != nil {
			return nil, err
		}
		a.notifyPublished(app.ID, ev) // a repeated create pushes nothing again
		a.completeOnce(ctx, app, oc, fresh)
		oc.claimed = nil
	}
	byChannel := make(map[string]channels.PublishAck, len(fresh))
	for _, ack := range fresh {
		byChannel[ack.Channel] = ack
	}
	out := make([]channels.PublishAck, 0, len(p.ev.Channels))
	for _, ch := range p.ev.Channels {
		ack, ok := byChannel[ch]
		if !ok {
			ack, ok = oc.replay[ch]
		}
		if !ok {
			if j, rep := oc.previous[ch]; rep && j < len(done) {
				for _, prev := range done[j] {
					if prev.Channel == ch {
						ack = prev
					}
				}
			}
		}
		ack.Channel = ch
		out = append(out, ack)
	}
	return out, nil
}

// replayedAll reports whether every channel of the claim was a replay (nothing published).
func (oc *onceClaim) replayedAll() bool {
	return oc != nil && len(oc.claimed) == 0 && len(oc.replay)+len(oc.previous) == len(oc.key)
}
