package protocol

import "testing"

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
