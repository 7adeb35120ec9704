package channels_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/protocol"
)

// tokenConn connects a V2 connection holding a capability token for client with grants (and
// history, for the rewind that skips the resume hold), and subscribes it to ch.
func tokenConn(t *testing.T, h *channels.Hub, clk interface{ Now() time.Time }, ch, client string, grants map[string][]string) *channelstest.Sub {
	t.Helper()
	for p, ops := range grants {
		grants[p] = append(ops, "history")
	}
	tok, err := protocol.SignCapabilityToken(appKey, secret, protocol.TokenRequest{ClientID: client, JTI: "jti-" + client + nextSocketID(),
		Capability: grants, IssuedAt: clk.Now(), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	claims, perr := protocol.ParseCapabilityToken(tok, appKey, secret, clk.Now())
	if perr != nil {
		t.Fatal(perr)
	}
	_, s := v2Sub(t, h, ch, channels.ConnOptions{Token: claims}, true)
	return s
}

// TestMutationCapabilities: a mutation bound to a socket (socket_id) is authorized as in
// Sockudo: message-<action>-any allows it on any message, message-<action>-own only on the
// messages the socket's client created (the client whose socket_id the publish named);
// without a token a socket holds neither; the token must also grant publish. Without a
// socket_id the signed request is privileged.
func TestMutationCapabilities(t *testing.T) {
	h, clk := mutableHub(t)
	const ch = "chat:caps"
	own := tokenConn(t, h, clk, ch, "alice", map[string][]string{"chat:*": {"subscribe", "publish", "message-update-own", "message_append_own"}})
	other := tokenConn(t, h, clk, ch, "bob", map[string][]string{"chat:*": {"subscribe", "publish", "message-update-own", "message-delete-own"}})
	anyone := tokenConn(t, h, clk, ch, "mod", map[string][]string{"chat:*": {"subscribe", "publish", "message-update-any", "message-delete-any", "message-append-any"}})
	noPublish := tokenConn(t, h, clk, ch, "carol", map[string][]string{"chat:*": {"subscribe", "message-update-any"}})
	_, plain := v2Sub(t, h, ch, channels.ConnOptions{}, true)

	createBy := func(s *channelstest.Sub) string {
		acks, err := h.PublishAcks(appID, channels.Event{Name: "chat.message", Channels: []string{ch}, Data: "hi", ExceptSocketID: s.SocketID()})
		if err != nil || acks[0].MessageSerial == "" {
			t.Fatalf("create: %v", err)
		}
		return acks[0].MessageSerial
	}
	byAlice := createBy(own)
	anonymous := create(t, h, ch, "hi")

	for _, tc := range []struct {
		name   string
		by     *channelstest.Sub // nil: privileged
		serial string
		action protocol.Action
		status int    // 0 = applied
		why    string // part of the refusal
	}{
		{"own update of own message", own, byAlice, protocol.ActionUpdate, 0, ""},
		{"own append of own message", own, byAlice, protocol.ActionAppend, 0, ""},
		{"no delete grant", own, byAlice, protocol.ActionDelete, 403, "neither message-delete-any nor message-delete-own"},
		{"own grant, another client's message", other, byAlice, protocol.ActionUpdate, 403, "created by another client"},
		{"own delete, another client's message", other, byAlice, protocol.ActionDelete, 403, "created by another client"},
		{"own grant, creator unknown", own, anonymous, protocol.ActionUpdate, 403, "creator is unknown"},
		{"any grant", anyone, byAlice, protocol.ActionUpdate, 0, ""},
		{"any append", anyone, anonymous, protocol.ActionAppend, 0, ""},
		{"any delete", anyone, anonymous, protocol.ActionDelete, 0, ""},
		{"token without publish", noPublish, byAlice, protocol.ActionUpdate, 403, "does not grant publish"},
		{"no token: no explicit grant", plain, byAlice, protocol.ActionUpdate, 403, "no capability token"},
		{"privileged", nil, byAlice, protocol.ActionDelete, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := protocol.Mutation{Action: tc.action, Data: protocol.Str("x")}
			if tc.action == protocol.ActionDelete {
				op.Data = nil
			}
			req := channels.MutationRequest{Channel: ch, MessageSerial: tc.serial, Op: op}
			if tc.by != nil {
				req.SocketID = tc.by.SocketID()
			}
			res, herr := h.Mutate(context.Background(), appID, req)
			switch {
			case tc.status == 0 && herr != nil:
				t.Fatalf("refused: %d %s", herr.Status, herr.Message)
			case tc.status == 0 && res.Status != "applied":
				t.Fatalf("status %q", res.Status)
			case tc.status != 0 && (herr == nil || herr.Status != tc.status || herr.Kind != "mutable_not_permitted" || !strings.Contains(herr.Message, tc.why)):
				t.Fatalf("got %+v, want %d mutable_not_permitted containing %q", herr, tc.status, tc.why)
			}
		})
	}
	// The version records the actor.
	vs, herr := h.ReadVersions(context.Background(), appID, ch, byAlice, protocol.OldestFirst, 10, "")
	if herr != nil || len(vs.Items) < 2 || !strings.Contains(string(vs.Items[0]), `"client_id":"alice"`) || !strings.Contains(string(vs.Items[1]), `"client_id":"alice"`) {
		t.Fatalf("versions: %v %v", vs, herr)
	}
}
