package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/internal/testkit"
)

// nodeTimeout bounds one run of verify.js; npmTimeout bounds `npm ci`.
const (
	nodeTimeout = 30 * time.Second
	npmTimeout  = 5 * time.Minute
)

// TestNodeSDKAcceptsSignature hands a request the Sender really delivered to the official
// `pusher` Node SDK (sdkcompat/webhook/verify.js): pusher.webhook(...).isValid() must accept
// it and getEvents() must read our events; a tampered body and a wrong secret must fail.
func TestNodeSDKAcceptsSignature(t *testing.T) {
	sdk := filepath.Join(testkit.RepoRoot(), "sdkcompat")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH (the SDK check needs Node.js 20+): %v", err)
	}
	ensureNodeModules(t, sdk)
	script := filepath.Join(sdk, "webhook", "verify.js")

	rc := newReceiver(t, nil)
	s := newSender(t, []config.App{testApp(hook(rc.url()))}, Options{BatchInterval: time.Hour, VacateDelay: -1}, nil)
	s.ChannelOccupied(appID, "presence-room")
	s.MemberAdded(appID, "presence-room", "ü-1")
	s.ClientEvent(appID, "presence-room", "client-msg", json.RawMessage(`{"text":"héllo ✓ <b>&</b>"}`), "123.456", "ü-1")
	s.SubscriptionCount(appID, "public", 2)
	closeNow(t, s)
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	sig := r.header.Get("X-Pusher-Signature")

	tests := []struct {
		name       string
		body       string
		secret     string
		wantValid  bool
		wantEvents int
	}{
		{"as delivered", string(r.body), appSecret, true, 4},
		{"tampered body", strings.Replace(string(r.body), "héllo", "hello", 1), appSecret, false, 4},
		{"wrong secret", string(r.body), "not-the-secret", false, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := runVerify(t, node, script, map[string]string{
				"key": r.header.Get("X-Pusher-Key"), "secret": tt.secret, "body": tt.body,
				"signature": sig, "content_type": r.header.Get("Content-Type"),
			})
			if out.Valid != tt.wantValid {
				t.Fatalf("isValid() = %v, want %v", out.Valid, tt.wantValid)
			}
			if len(out.Events) != tt.wantEvents {
				t.Fatalf("getEvents() = %v, want %d events", out.Events, tt.wantEvents)
			}
			if !tt.wantValid {
				return
			}
			if out.TimeMS != decode(t, r.body).TimeMS {
				t.Fatalf("getTime() = %d, want %d", out.TimeMS, decode(t, r.body).TimeMS)
			}
			ce := out.Events[2]
			if ce["name"] != "client_event" || ce["data"] != `{"text":"héllo ✓ <b>&</b>"}` || ce["user_id"] != "ü-1" {
				t.Fatalf("client_event as the SDK reads it: %v", ce)
			}
		})
	}
}

// verifyOut is what verify.js prints.
type verifyOut struct {
	Valid  bool             `json:"valid"`
	TimeMS int64            `json:"time_ms"`
	Events []map[string]any `json:"events"`
}

func runVerify(t *testing.T, node, script string, in map[string]string) verifyOut {
	t.Helper()
	input, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	var out verifyOut
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("verify.js printed %q: %v", stdout, err)
	}
	return out
}

// ensureNodeModules runs `npm ci` in dir when its node_modules lacks the pinned `pusher`
// package (npm writes node_modules/.package-lock.json last, so it marks a whole install).
func ensureNodeModules(t *testing.T, dir string) {
	t.Helper()
	_, errStamp := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	_, errPkg := os.Stat(filepath.Join(dir, "node_modules", "pusher", "package.json"))
	if errStamp == nil && errPkg == nil {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("%s/node_modules is missing and npm is not on PATH: %v", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	t.Logf("node_modules missing: running npm ci in %s", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}
