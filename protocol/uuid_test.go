package protocol

import (
	"math"
	"testing"
)

func TestNewUUID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		u := NewUUID()
		if !ValidUUID(u) {
			t.Fatalf("NewUUID() = %q, not a canonical v4 UUID", u)
		}
		if seen[u] {
			t.Fatalf("NewUUID() repeated %q", u)
		}
		seen[u] = true
	}
}

func TestValidUUID(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"3f5c1c0e-9d55-4a4e-8c0b-1a2b3c4d5e6f", true},
		{"3f5c1c0e-9d55-1a4e-8c0b-1a2b3c4d5e6f", false}, // version 1
		{"3f5c1c0e-9d55-4a4e-cc0b-1a2b3c4d5e6f", false}, // variant
		{"3F5C1C0E-9D55-4A4E-8C0B-1A2B3C4D5E6F", false}, // upper case
		{"3f5c1c0e9d554a4e8c0b1a2b3c4d5e6f", false},
		{"", false},
	} {
		if got := ValidUUID(tt.in); got != tt.want {
			t.Errorf("ValidUUID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestMessageIDs: ids of one slot share a 28-character prefix and count up in the last 8
// hex digits; a fresh random prefix is drawn before the counter would wrap; slots and
// generators (nodes, restarts) draw different prefixes; every id is a UUIDv8.
func TestMessageIDs(t *testing.T) {
	var g, other MessageIDs
	seen := map[string]bool{}
	var prev string
	for i := range 1000 {
		id := g.Next(7)
		if !ValidMessageUUID(id) || seen[id] {
			t.Fatalf("id %d %q: invalid or repeated", i, id)
		}
		seen[id] = true
		if prev != "" && id[:28] != prev[:28] {
			t.Fatalf("prefix changed within a slot: %s then %s", prev, id)
		}
		prev = id
	}
	if id := g.Next(7 + MessageIDSlots); id[:28] != prev[:28] || id[28:] != "000003e8" {
		t.Fatalf("same slot by key modulo: %s after %s", id, prev)
	}
	if a, b, c := g.Next(8), other.Next(7), g.Next(7); a[:28] == c[:28] || b[:28] == c[:28] {
		t.Fatalf("another slot or generator shares the prefix: %s %s %s", a, b, c)
	}
	s := &g.slots[7]
	s.n = math.MaxUint32 - 1
	last := g.Next(7)
	wrapped := g.Next(7)
	if last[28:] != "ffffffff" || wrapped[:28] == last[:28] || wrapped[28:] != "00000000" || !ValidMessageUUID(wrapped) {
		t.Fatalf("at the counter's end: %s then %s", last, wrapped)
	}
}

func BenchmarkMessageIDs(b *testing.B) {
	var g MessageIDs
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = g.Next(uint64(i))
	}
}
