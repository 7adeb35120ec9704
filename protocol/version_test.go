package protocol

import (
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want Version
	}{
		{"2", V2},
		{"7", V1},
		{"", V1},
		{"x", V1},
		{"1", V1},
		{"5", V1},
		{"99", V1},
		{"256", V1},
		{"-2", V1},
		{"2.0", V1},
		{"22", V1},
		{"v2", V1},
	}
	for _, tc := range tests {
		if got := ParseVersion(tc.in); got != tc.want {
			t.Errorf("ParseVersion(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestEventName(t *testing.T) {
	tests := []struct {
		v    Version
		in   string
		want string
	}{
		{V1, "pusher:connection_established", "pusher:connection_established"},
		{V1, "pusher_internal:member_added", "pusher_internal:member_added"},
		{V1, "client-typing", "client-typing"},
		{V2, "pusher:connection_established", "sockudo:connection_established"},
		{V2, "pusher:error", "sockudo:error"},
		{V2, "pusher:pong", "sockudo:pong"},
		{V2, "pusher_internal:subscription_succeeded", "sockudo_internal:subscription_succeeded"},
		{V2, "pusher_internal:member_removed", "sockudo_internal:member_removed"},
		{V2, "pusher:", "sockudo:"},
		{V2, "client-typing", "client-typing"},
		{V2, "order.created", "order.created"},
		{V2, "sockudo:ping", "sockudo:ping"},
		{V2, "pusher", "pusher"},
		{V2, "pusher_internal", "pusher_internal"},
		{V2, "Pusher:error", "Pusher:error"},
		{V2, "my-pusher:event", "my-pusher:event"},
		{Version(0), "pusher:error", "pusher:error"},
		{Version(7), "pusher:error", "pusher:error"},
	}
	for _, tc := range tests {
		if got := tc.v.EventName(tc.in); got != tc.want {
			t.Errorf("Version(%d).EventName(%q) = %q, want %q", tc.v, tc.in, got, tc.want)
		}
	}
}

// TestEventConstants checks that every outbound system name is V1-spelled, rewrites to the
// sockudo family for V2, and both spellings share one canonical name.
func TestEventConstants(t *testing.T) {
	for _, name := range []string{
		EventConnectionEstablished, EventError, EventPing, EventPong, EventSubscriptionSucceeded,
		EventSubscriptionError, EventMemberAdded, EventMemberRemoved, EventSigninSuccess,
		EventCacheMiss, EventWatchlistEvents,
	} {
		if !strings.HasPrefix(name, PrefixPusher) && !strings.HasPrefix(name, PrefixPusherInternal) {
			t.Errorf("%q is not in the V1 dialect", name)
		}
		v2 := V2.EventName(name)
		if !strings.HasPrefix(v2, PrefixSockudo) && !strings.HasPrefix(v2, PrefixSockudoInternal) {
			t.Errorf("V2 name of %q is %q", name, v2)
		}
		c1, sys1 := Canonical(name)
		c2, sys2 := Canonical(v2)
		if !sys1 || !sys2 || c1 != c2 || c1 == "" {
			t.Errorf("Canonical(%q) = %q, %v; Canonical(%q) = %q, %v", name, c1, sys1, v2, c2, sys2)
		}
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		system bool
	}{
		{"pusher:subscribe", "subscribe", true},
		{"pusher_internal:subscription_succeeded", "subscription_succeeded", true},
		{"sockudo:subscribe", "subscribe", true},
		{"sockudo_internal:member_added", "member_added", true},
		{"pusher:", "", true},
		{"sockudo_internal:", "", true},
		{"pusher:pusher:x", "pusher:x", true},
		{"client-typing", "client-typing", false},
		{"order.created", "order.created", false},
		{"subscribe", "subscribe", false},
		{"", "", false},
		{"pusher", "pusher", false},
		{"pusher_internal", "pusher_internal", false},
		{"PUSHER:ping", "PUSHER:ping", false},
		{"Sockudo:ping", "Sockudo:ping", false},
		{" pusher:ping", " pusher:ping", false},
		{"pusher-ping", "pusher-ping", false},
	}
	for _, tc := range tests {
		got, sys := Canonical(tc.in)
		if got != tc.want || sys != tc.system {
			t.Errorf("Canonical(%q) = %q, %v; want %q, %v", tc.in, got, sys, tc.want, tc.system)
		}
		if IsReservedEventName(tc.in) != tc.system {
			t.Errorf("IsReservedEventName(%q) = %v, want %v", tc.in, !tc.system, tc.system)
		}
	}
}
