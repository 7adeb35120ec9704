package protocol

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var socketIDPattern = regexp.MustCompile(`^\d+\.\d+$`)

func TestNewSocketID(t *testing.T) {
	seen := make(map[string]bool)
	for i := 0; i < 20000; i++ {
		id := NewSocketID()
		if !socketIDPattern.MatchString(id) {
			t.Fatalf("NewSocketID() = %q, does not match %s", id, socketIDPattern)
		}
		if !ValidSocketID(id) {
			t.Fatalf("ValidSocketID(NewSocketID() = %q) = false", id)
		}
		a, b, _ := strings.Cut(id, ".")
		for _, part := range []string{a, b} {
			n, err := strconv.ParseUint(part, 10, 64)
			if err != nil || n > 10_000_000_000 {
				t.Fatalf("NewSocketID() = %q: part %q out of range", id, part)
			}
			if len(part) > 1 && part[0] == '0' {
				t.Fatalf("NewSocketID() = %q: leading zero", id)
			}
		}
		if seen[id] {
			t.Fatalf("NewSocketID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestValidSocketID(t *testing.T) {
	d20 := strings.Repeat("9", 20)
	d21 := strings.Repeat("9", 21)
	tests := []struct {
		in   string
		want bool
	}{
		{"1.2", true},
		{"0.0", true},
		{"1234.1234", true},
		{"5830219471.2049913381", true},
		{"10000000000.10000000000", true},
		{"007.1", true},
		{d20 + "." + d20, true},
		{d21 + ".1", false},
		{"1." + d21, false},
		{"", false},
		{".", false},
		{"1.", false},
		{".1", false},
		{"1", false},
		{"12", false},
		{"1.2.3", false},
		{"1..2", false},
		{"a.b", false},
		{"1.b", false},
		{"-1.2", false},
		{"+1.2", false},
		{"1.-2", false},
		{" 1.2", false},
		{"1.2 ", false},
		{"1.2\n", false},
		{"1,2", false},
		{"1:2", false},
		{"１.２", false}, // full-width digits
		{"1.2e3", false},
		{"0x1.2", false},
	}
	for _, tc := range tests {
		if got := ValidSocketID(tc.in); got != tc.want {
			t.Errorf("ValidSocketID(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func FuzzValidSocketID(f *testing.F) {
	for _, s := range []string{"1.2", "1234.1234", "1.", ".1", "1.2.3", "a.b", "", strings.Repeat("1", 21) + ".1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, b, _ := strings.Cut(s, ".")
		want := socketIDPattern.MatchString(s) && len(a) <= 20 && len(b) <= 20
		if got := ValidSocketID(s); got != want {
			t.Fatalf("ValidSocketID(%q) = %v, want %v", s, got, want)
		}
	})
}
