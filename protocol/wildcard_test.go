package protocol

import (
	"strings"
	"testing"
)

func TestValidateWildcard(t *testing.T) {
	ok := []string{"ticker:*", "*", "*-data", "market-*-eu", "wildcard-3b0e7a55-0d5c-4a8e-9e5f-1a2b3c4d5e6f-*", "cache-*", "a=b@c.d_e:*"}
	for _, p := range ok {
		if err := ValidateWildcard(p, 0); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	bad := []struct{ p, want string }{
		{"a*b*", "exactly one '*'"},
		{"nostar", "exactly one '*'"},
		{"room#*", "user-limited"},
		{"private-*", "only supported for public channels"},
		{"private-encrypted-*", "only supported for public channels"},
		{"presence-*", "only supported for public channels"},
		{"a,b*", "invalid character ','"},
		{"a;*", "invalid character ';'"},
		{"[meta]*", "invalid character '['"},
		{"é*", "invalid character"},
		{strings.Repeat("a", 200) + "*", "longer than 200 bytes"},
	}
	for _, tt := range bad {
		err := ValidateWildcard(tt.p, 0)
		if err == nil || err.Code != CodeChannelError || !strings.Contains(err.Message, tt.want) {
			t.Errorf("%.40s: %v, want 4300 %q", tt.p, err, tt.want)
		}
	}
}

func TestWildcardMatches(t *testing.T) {
	tests := []struct {
		pattern, channel string
		want             bool
	}{
		{"ticker:*", "ticker:btc", true},
		{"ticker:*", "ticker:", true},
		{"ticker:*", "ticker", false},
		{"*-data", "price-data", true},
		{"a*a", "a", false}, // prefix and suffix may not overlap
		{"a*a", "aa", true},
		{"*", "private-x", false},
		{"*", "presence-x", false},
		{"*", "#server-to-user-1", false},
		{"*", "[meta]x", false},
		{"pri*", "private-x", false},
		{"pri*", "prices", true},
		{"cache-*", "cache-x", true},
	}
	for _, tt := range tests {
		if got := WildcardMatches(tt.pattern, tt.channel); got != tt.want {
			t.Errorf("%s ~ %s: %v, want %v", tt.pattern, tt.channel, got, tt.want)
		}
	}
}

func TestMetaChannelBase(t *testing.T) {
	if b, ok := MetaChannelBase("[meta]room"); !ok || b != "room" {
		t.Fatal(b, ok)
	}
	for _, n := range []string{"[meta]", "room", "[meta", "x[meta]room"} {
		if _, ok := MetaChannelBase(n); ok {
			t.Errorf("%s: accepted", n)
		}
	}
	if MetaChannelFor("room") != "[meta]room" || IsWildcard("#server-to-user-*") || !IsWildcard("a*") {
		t.Fatal("helpers")
	}
}

// FuzzWildcard checks pattern validation and matching against their definitions: a valid
// pattern has one '*', and a channel matches iff it is deliverable and has the pattern's
// prefix and suffix without overlap.
func FuzzWildcard(f *testing.F) {
	for _, s := range [][2]string{{"ticker:*", "ticker:btc"}, {"*", "private-x"}, {"a*a", "a"}, {"*-data", "price-data"},
		{"market-*-eu", "market-btc-eu"}, {"a**", "a"}, {"private-*", "private-a"}, {"#*", "#"}, {"[meta]*", "[meta]x"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, channel string) {
		err := ValidateWildcard(pattern, 0)
		if err != nil {
			if err.Code != CodeChannelError {
				t.Fatalf("code %d", err.Code)
			}
			return
		}
		if strings.Count(pattern, "*") != 1 || len(pattern) > DefaultMaxChannelNameLength || !IsWildcard(pattern) {
			t.Fatalf("accepted %q", pattern)
		}
		i := strings.IndexByte(pattern, '*')
		p, s := pattern[:i], pattern[i+1:]
		want := len(channel) >= len(p)+len(s) && channel[:len(p)] == p && channel[len(channel)-len(s):] == s &&
			Classify(channel).Type == Public && !strings.HasPrefix(channel, "[meta]") && !strings.Contains(channel, "*")
		if got := WildcardMatches(pattern, channel); got != want {
			t.Fatalf("%q ~ %q: %v, want %v", pattern, channel, got, want)
		}
	})
}
