package protocol

import (
	"strings"
	"testing"
	"time"
)

// The extended operations: each parses in both spellings, is kept, and needs an explicit
// grant (a connection without a token has none); the core ones are allowed without a token.
func TestCapabilityOps(t *testing.T) {
	explicit := []Op{OpAnnotationSubscribe, OpAnnotationPublish, OpAnnotationDeleteOwn, OpAnnotationDeleteAny,
		OpMessageUpdateOwn, OpMessageUpdateAny, OpMessageDeleteOwn, OpMessageDeleteAny, OpMessageAppendOwn,
		OpMessageAppendAny, OpPushSubscribe, OpPushAdmin}
	core := []Op{OpSubscribe, OpPublish, OpHistory, OpPresence}
	var none *Capabilities
	for _, op := range core {
		if op.Explicit() || !none.Allows(op, "x") {
			t.Errorf("%s: core operations are allowed without a token", op)
		}
	}
	for _, op := range explicit {
		if !op.Explicit() || none.Allows(op, "x") {
			t.Errorf("%s: needs an explicit grant", op)
		}
		for _, spelling := range []string{string(op), strings.ReplaceAll(string(op), "-", "_")} {
			got, ok := ParseOp(spelling)
			if !ok || got != op {
				t.Errorf("ParseOp(%q) = %q, %v", spelling, got, ok)
			}
			c, err := ParseCapabilityToken(mint(t, TokenRequest{Capability: map[string][]string{"chat:*": {spelling}}}), tKey, tSecret, tNow)
			if err != nil {
				t.Fatalf("%s: %v", spelling, err)
			}
			if !c.Capabilities.Allows(op, "chat:room") || c.Capabilities.Allows(op, "other") || c.Capabilities.Allows(OpSubscribe, "chat:room") {
				t.Errorf("%s: a grant on chat:* allows exactly %s on chat:*", spelling, op)
			}
			for _, o := range explicit {
				if o != op && c.Capabilities.Allows(o, "chat:room") {
					t.Errorf("granting %s also grants %s", op, o)
				}
			}
		}
	}
	for _, bad := range []string{"object-subscribe", "object_publish", "message-update", "Subscribe", "push", "", "message-update-own ", "annotation--publish"} {
		if _, ok := ParseOp(bad); ok {
			t.Errorf("ParseOp(%q) accepted an unknown operation", bad)
		}
		_, err := ParseCapabilityToken(mint(t, TokenRequest{Capability: map[string][]string{"*": {"subscribe", bad}}}), tKey, tSecret, tNow)
		if err == nil || err.Code != CodeUnauthorized || !strings.Contains(err.Message, "unknown capability operation") {
			t.Errorf("token granting %q: %v, want refused as Sockudo refuses unsupported operations", bad, err)
		}
	}
}

func TestMutationOps(t *testing.T) {
	for _, tc := range []struct {
		action   Action
		own, any Op
	}{
		{ActionUpdate, OpMessageUpdateOwn, OpMessageUpdateAny},
		{ActionDelete, OpMessageDeleteOwn, OpMessageDeleteAny},
		{ActionAppend, OpMessageAppendOwn, OpMessageAppendAny},
	} {
		own, any, ok := MutationOps(tc.action)
		if !ok || own != tc.own || any != tc.any {
			t.Errorf("MutationOps(%s) = %s, %s, %v", tc.action, own, any, ok)
		}
	}
	if _, _, ok := MutationOps(ActionCreate); ok {
		t.Error("create is not a mutation")
	}
}

// FuzzCapabilityOpList signs a token granting a fuzzed list of operations (comma-separated)
// on "*": it is accepted exactly when every name is a known operation, and then grants
// exactly those operations.
func FuzzCapabilityOpList(f *testing.F) {
	for _, s := range []string{"subscribe", "message_update_own,message-delete-any", "push-admin,push_subscribe,annotation-publish",
		"annotation-subscribe,annotation_delete_own,annotation-delete-any", "message-append-own,history,presence", "object-subscribe",
		"subscribe,,publish", "message-update-own\x00", "PUSH-ADMIN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		names := strings.Split(list, ",")
		if len(names) > 64 {
			return
		}
		tok, serr := SignCapabilityToken(tKey, tSecret, TokenRequest{ClientID: "u", JTI: "j", IssuedAt: tNow, TTL: time.Minute,
			Capability: map[string][]string{"*": names}})
		if serr != nil {
			t.Fatal(serr)
		}
		c, err := ParseCapabilityToken(tok, tKey, tSecret, tNow)
		granted := map[Op]bool{}
		known := true
		for _, n := range names {
			op, ok := ParseOp(n)
			known = known && ok
			granted[op] = ok
		}
		if !known {
			if err == nil && len(tok) <= MaxTokenBytes {
				t.Fatalf("%q accepted with an unknown operation", list)
			}
			return
		}
		if err != nil {
			if len(tok) <= MaxTokenBytes {
				t.Fatalf("%q refused: %v", list, err)
			}
			return
		}
		for op := range knownOps {
			if got := c.Capabilities.Allows(op, "any-channel"); got != granted[op] {
				t.Fatalf("%q: Allows(%s) = %v", list, op, got)
			}
		}
	})
}
