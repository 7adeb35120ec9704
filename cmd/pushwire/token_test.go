package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

func TestRunToken(t *testing.T) {
	var out, errb bytes.Buffer
	code := runToken([]string{"--client", "user-42", "--grant", "private-orders:*=subscribe,history", "--ttl", "30m"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	claims, err := protocol.ParseCapabilityToken(strings.TrimSpace(out.String()), "app-key", "app-secret", time.Now())
	if err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	if claims.ClientID != "user-42" || !protocol.ValidUUID(claims.JTI) || claims.ExpiresAt.Sub(claims.IssuedAt) != 30*time.Minute {
		t.Fatalf("claims %+v", claims)
	}
	if !claims.Capabilities.Allows(protocol.OpHistory, "private-orders:1") || claims.Capabilities.Allows(protocol.OpPublish, "private-orders:1") {
		t.Error("grants not as asked")
	}

	// The app comes from the config file.
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("apps:\n  - id: a1\n    key: k1\n    secret: s1\n  - id: a2\n    key: k2\n    secret: s2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := runToken([]string{"--config", cfg, "--app", "a2", "--client", "c"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if _, err := protocol.ParseCapabilityToken(strings.TrimSpace(out.String()), "k2", "s2", time.Now()); err != nil {
		t.Fatalf("token for app a2: %v", err)
	}
	for _, args := range [][]string{{}, {"--client", "c", "--grant", "nope"}, {"--client", "c", "--grant", "*=subscribe,object-publish"}, {"--client", "c", "--config", cfg, "--app", "zz"}} {
		errb.Reset()
		if code := runToken(args, &out, &errb); code == 0 || errb.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q; want a failure with a message", args, code, errb.String())
		}
	}
}
