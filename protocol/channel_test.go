package protocol

import (
	"strings"
	"testing"
)

func TestValidateChannelNameAndClassify(t *testing.T) {
	tests := []struct {
		name         string
		valid        bool
		typ          ChannelType
		cache        bool
		needsAuth    bool
		clientEvents bool
	}{
		{name: "my-channel", valid: true, typ: Public},
		{name: "private-orders", valid: true, typ: Private, needsAuth: true, clientEvents: true},
		{name: "presence-room", valid: true, typ: Presence, needsAuth: true, clientEvents: true},
		{name: "private-encrypted-secrets", valid: true, typ: Encrypted, needsAuth: true},
		{name: "cache-prices", valid: true, typ: Public, cache: true},
		{name: "private-cache-prices", valid: true, typ: Private, cache: true, needsAuth: true},
		{name: "private-encrypted-cache-prices", valid: true, typ: Encrypted, cache: true, needsAuth: true},
		{name: "presence-cache-room", valid: true, typ: Presence, cache: true, needsAuth: true},
		{name: "#server-to-user-123", valid: true, typ: User},
		{name: "#server-to-user-a_b-c=d@e.f", valid: true, typ: User},
		{name: "order:ord_123", valid: true, typ: Public},
		{name: "store:10:zone:3", valid: true, typ: Public},
		{name: "private-order:ord_1", valid: true, typ: Private, needsAuth: true, clientEvents: true},
		{name: "presence-cache-store:10", valid: true, typ: Presence, cache: true, needsAuth: true},
		{name: "a_b-c=d@e,f.g;h:i", valid: true, typ: Public},
		{name: "AZaz09", valid: true, typ: Public},
		// prefixes are exact and case-sensitive
		{name: "Private-orders", valid: true, typ: Public},
		{name: "private", valid: true, typ: Public},
		{name: "presence", valid: true, typ: Public},
		{name: "cache", valid: true, typ: Public},
		{name: "privateorders", valid: true, typ: Public},
		{name: "private-encryptedx", valid: true, typ: Private, needsAuth: true, clientEvents: true},
		{name: "private-cachex", valid: true, typ: Private, needsAuth: true, clientEvents: true},
		{name: "presence-encrypted-x", valid: true, typ: Presence, needsAuth: true, clientEvents: true},
		{name: "public-cache-x", valid: true, typ: Public},
		// length: 200 bytes is the default limit
		{name: strings.Repeat("a", 200), valid: true, typ: Public},
		{name: strings.Repeat("a", 201), typ: Public},
		{name: "private-" + strings.Repeat("x", 192), valid: true, typ: Private, needsAuth: true, clientEvents: true},
		{name: "private-" + strings.Repeat("x", 193), typ: Private, needsAuth: true, clientEvents: true},
		{name: UserChannelPrefix + strings.Repeat("1", 200-len(UserChannelPrefix)), valid: true, typ: User},
		{name: UserChannelPrefix + strings.Repeat("1", 201-len(UserChannelPrefix)), typ: User},
		// invalid characters
		{name: "", typ: Public},
		{name: "my channel", typ: Public},
		{name: " my-channel", typ: Public},
		{name: "my-channel\n", typ: Public},
		{name: "a\x00b", typ: Public},
		{name: "café", typ: Public},
		{name: "日本", typ: Public},
		{name: "a/b", typ: Public},
		{name: `a"b`, typ: Public},
		{name: "a+b", typ: Public},
		{name: "*", typ: Public},
		{name: "news-*", typ: Public},
		{name: "[meta]room", typ: Public},
		{name: "room#u1,u2", typ: Public},
		{name: "ns:room#u1", typ: Public},
		{name: "#room", typ: Public},
		{name: "#server-to-user-", typ: User},
		{name: "#server-to-user-1#2", typ: User},
		{name: "##server-to-user-1", typ: Public},
		{name: "#server-to-user-a b", typ: User},
		{name: "private-#server-to-user-1", typ: Private, needsAuth: true, clientEvents: true},
	}
	for _, tc := range tests {
		label := tc.name
		if len(label) > 40 {
			label = label[:40] + "..."
		}
		t.Run(label, func(t *testing.T) {
			err := ValidateChannelName(tc.name, 0)
			if tc.valid && err != nil {
				t.Errorf("ValidateChannelName(%q) = %v, want valid", tc.name, err)
			}
			if !tc.valid {
				if err == nil {
					t.Errorf("ValidateChannelName(%q) = nil, want error", tc.name)
				} else if err.Code != CodeChannelError || !strings.HasPrefix(err.Message, "Invalid channel name") {
					t.Errorf("ValidateChannelName(%q) = %+v, want 4300 \"Invalid channel name...\"", tc.name, err)
				}
			}
			c := Classify(tc.name)
			if c.Type != tc.typ || c.Cache != tc.cache {
				t.Errorf("Classify(%q) = %+v, want {%v %v}", tc.name, c, tc.typ, tc.cache)
			}
			if c.NeedsAuth() != tc.needsAuth {
				t.Errorf("Classify(%q).NeedsAuth() = %v, want %v", tc.name, c.NeedsAuth(), tc.needsAuth)
			}
			if c.AllowsClientEvents() != tc.clientEvents {
				t.Errorf("Classify(%q).AllowsClientEvents() = %v, want %v", tc.name, c.AllowsClientEvents(), tc.clientEvents)
			}
		})
	}
}

func TestValidateChannelNameMaxLen(t *testing.T) {
	tests := []struct {
		name   string
		maxLen int
		valid  bool
	}{
		{strings.Repeat("a", 10), 10, true},
		{strings.Repeat("a", 11), 10, false},
		{strings.Repeat("a", 164), 164, true},
		{strings.Repeat("a", 165), 164, false},
		{strings.Repeat("a", 200), 0, true},
		{strings.Repeat("a", 201), 0, false},
		{strings.Repeat("a", 200), -5, true},
		{strings.Repeat("a", 201), -5, false},
		{strings.Repeat("a", 300), 300, true},
	}
	for _, tc := range tests {
		err := ValidateChannelName(tc.name, tc.maxLen)
		if (err == nil) != tc.valid {
			t.Errorf("ValidateChannelName(%d bytes, %d) = %v, want valid=%v", len(tc.name), tc.maxLen, err, tc.valid)
		}
		if err != nil && !strings.Contains(err.Message, "longer than") {
			t.Errorf("message %q does not mention the length", err.Message)
		}
	}
}

func TestValidateChannelNameMessageIsBounded(t *testing.T) {
	name := strings.Repeat("a", 150) + "!"
	err := ValidateChannelName(name, 0)
	if err == nil {
		t.Fatal("want error")
	}
	if len(err.Message) > 150 || !strings.Contains(err.Message, `'!'`) {
		t.Errorf("message = %q, want a short one naming the bad character", err.Message)
	}
}

func TestChannelTypeString(t *testing.T) {
	tests := []struct {
		typ  ChannelType
		want string
	}{
		{Public, "public"},
		{Private, "private"},
		{Presence, "presence"},
		{Encrypted, "private-encrypted"},
		{User, "user"},
		{ChannelType(200), "public"},
	}
	for _, tc := range tests {
		if got := tc.typ.String(); got != tc.want {
			t.Errorf("%d.String() = %q, want %q", tc.typ, got, tc.want)
		}
	}
}

func TestUserChannelID(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		wantOK bool
	}{
		{"#server-to-user-123", "123", true},
		{"#server-to-user-", "", true},
		{"#server-to-user-a:b", "a:b", true},
		{"server-to-user-123", "", false},
		{"private-#server-to-user-1", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		id, ok := UserChannelID(tc.name)
		if id != tc.id || ok != tc.wantOK {
			t.Errorf("UserChannelID(%q) = %q, %v; want %q, %v", tc.name, id, ok, tc.id, tc.wantOK)
		}
	}
}

func TestValidateEventName(t *testing.T) {
	tests := []struct {
		name   string
		maxLen int
		valid  bool
	}{
		{"order.created", 0, true},
		{"client-typing", 0, true},
		{"my event with spaces", 0, true},
		{"pusher", 0, true},
		{strings.Repeat("e", 200), 0, true},
		{strings.Repeat("e", 201), 0, false},
		{strings.Repeat("e", 11), 10, false},
		{"", 0, false},
		{"pusher:subscribe", 0, false},
		{"pusher_internal:member_added", 0, false},
		{"sockudo:ping", 0, false},
		{"sockudo_internal:x", 0, false},
	}
	for _, tc := range tests {
		err := ValidateEventName(tc.name, tc.maxLen)
		if (err == nil) != tc.valid {
			t.Errorf("ValidateEventName(%.30q, %d) = %v, want valid=%v", tc.name, tc.maxLen, err, tc.valid)
		}
		if err != nil && err.Code != CodeGeneric {
			t.Errorf("ValidateEventName(%.30q) code = %d, want %d", tc.name, err.Code, CodeGeneric)
		}
	}
}

func FuzzValidateChannelName(f *testing.F) {
	for _, s := range []string{
		"", "my-channel", "private-x", "presence-x", "private-encrypted-x", "cache-x",
		"private-cache-x", "private-encrypted-cache-x", "presence-cache-x", "#server-to-user-1",
		"#server-to-user-", "order:ord_123", "store:10:zone:3", "a#b", "*", "café", "a b",
		strings.Repeat("a", 200), strings.Repeat("a", 201),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		c := Classify(name)
		_ = c.NeedsAuth()
		if c.AllowsClientEvents() && (c.Cache || c.Type == Encrypted || c.Type == User || c.Type == Public) {
			t.Fatalf("%q: client events allowed on %+v", name, c)
		}
		if err := ValidateChannelName(name, 0); err != nil {
			if err.Code != CodeChannelError {
				t.Fatalf("%q: code %d", name, err.Code)
			}
			return
		}
		if name == "" || len(name) > DefaultMaxChannelNameLength {
			t.Fatalf("%q (%d bytes) accepted", name, len(name))
		}
		body := name
		if id, ok := UserChannelID(name); ok {
			if id == "" || c.Type != User {
				t.Fatalf("%q accepted as %+v", name, c)
			}
			body = id
		}
		for i := 0; i < len(body); i++ {
			if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-=@,.;:", rune(body[i])) {
				t.Fatalf("%q accepted with byte %q", name, body[i])
			}
		}
		if len(name) > 1 && ValidateChannelName(name, len(name)-1) == nil {
			t.Fatalf("%q accepted with maxLen %d", name, len(name)-1)
		}
	})
}
