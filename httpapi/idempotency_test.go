package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestIdempotencyHeaderBoundToSignature (issue 16, finding 5): X-Idempotency-Key is not
// covered by the signature, so it only de-duplicates requests with the same signed body. A
// signed request replayed with a chosen header key cannot make a later genuine publish with
// that key answer "replayed"; a genuine retry still is de-duplicated; and the signed body key
// wins over any header.
func TestIdempotencyHeaderBoundToSignature(t *testing.T) {
	e := newEnv(t, Options{}, nil)
	sub := subscribe(t, e.hub, "c", "")
	path := "/apps/app-id/events"
	send := func(rawURL string, body []byte, key string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("POST", rawURL, strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("X-Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return resp
	}
	replayed := func(resp *http.Response) bool { return resp.Header.Get("Idempotent-Replayed") == "true" }

	// A genuine publish, captured by an attacker and replayed with a key of their choosing.
	old := []byte(`{"name":"e","channel":"c","data":"old"}`)
	oldURL := signedURL(e.ts, "POST", path, nil, old, testSecret, time.Now())
	send(oldURL, old, "")
	send(oldURL, old, "order-7")
	takeAll(sub)

	// The genuine publish that later uses that key is delivered.
	fresh := []byte(`{"name":"e","channel":"c","data":"new"}`)
	if resp := send(signedURL(e.ts, "POST", path, nil, fresh, testSecret, time.Now()), fresh, "order-7"); replayed(resp) {
		t.Fatal("a genuine publish was answered from a replayed request's key")
	}
	wantFrames(t, "genuine", sub, frame("e", "c", "new"))
	// Its retry (re-signed, same body, same key) is de-duplicated.
	if resp := send(signedURL(e.ts, "POST", path, nil, fresh, testSecret, time.Now().Add(time.Second)), fresh, "order-7"); !replayed(resp) {
		t.Fatal("a retry with the same key and body was delivered again")
	}
	wantFrames(t, "retry", sub)

	// A signed body key is the key: a replay with another header cannot change it, and the
	// header of a replay of a body-keyed request claims nothing.
	keyed := []byte(`{"name":"e","channel":"c","data":"k","idempotency_key":"k1"}`)
	keyedURL := signedURL(e.ts, "POST", path, nil, keyed, testSecret, time.Now())
	send(keyedURL, keyed, "")
	if resp := send(keyedURL, keyed, "other"); !replayed(resp) {
		t.Fatal("the signed body key was overridden by a header")
	}
	wantFrames(t, "keyed", sub, frame("e", "c", "k"))
	later := []byte(`{"name":"e","channel":"c","data":"later"}`)
	if resp := send(signedURL(e.ts, "POST", path, nil, later, testSecret, time.Now()), later, "other"); replayed(resp) {
		t.Fatal("a header key was claimed by a body-keyed request")
	}
	wantFrames(t, "later", sub, frame("e", "c", "later"))
}

// brokenAfterClaim is an idempotency store whose Complete and Release fail.
type brokenAfterClaim struct{ *MemoryIdempotency }

func (brokenAfterClaim) Complete(context.Context, string, string, []byte, time.Duration) error {
	return errors.New("complete: connection refused")
}

func (brokenAfterClaim) Release(context.Context, string, string) error {
	return errors.New("release: connection refused")
}

// TestIdempotencyStoreErrorsLogged: a publish whose key cannot be completed still answers
// (it was delivered), and the store error is logged with the operation and the error; so is
// a release that fails.
func TestIdempotencyStoreErrorsLogged(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	store := brokenAfterClaim{NewMemoryIdempotency(time.Now, 100)}
	e := newEnv(t, Options{Logger: zap.New(core), Idempotency: store}, nil)
	sub := subscribe(t, e.hub, "alpha", "")
	resp, body := e.call(t, http.MethodPost, "/apps/app-id/events", nil, []byte(`{"name":"e","channel":"alpha","data":"1","extras":{"idempotencyKey":"k1"}}`))
	wantOK(t, resp, body, `{}`)
	wantFrames(t, "publish", sub, frame("e", "alpha", "1"))
	// A batch refused because another request holds a key releases the keys it claimed.
	if _, _, ok, err := store.Claim(context.Background(), "app-id", "held", time.Minute); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	resp, body = e.call(t, http.MethodPost, "/apps/app-id/batch_events", nil, []byte(`{"batch":[{"name":"e","channel":"alpha","data":"2","extras":{"idempotencyKey":"k2"}},{"name":"e","channel":"alpha","data":"3","extras":{"idempotencyKey":"held"}}]}`))
	wantError(t, resp, body, http.StatusConflict, "idempotency_in_progress")
	wantFrames(t, "refused batch", sub)
	got := map[string]string{}
	for _, entry := range logs.FilterMessage("idempotency store failed").All() {
		f := entry.ContextMap()
		got[f["op"].(string)] = f["error"].(string)
	}
	if got["complete"] != "complete: connection refused" || got["release"] != "release: connection refused" {
		t.Fatalf("logged %v", got)
	}
}
