package protocol

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestValidateMessageID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want string // "" = valid; else a part of the error
	}{
		{"0b0f6a64-2d5c-4b11-9a43-6c0e0a3a4f4e", ""},
		{"01HZX3J6Q7T9Y2", ""},
		{"order-42:v3", ""},
		{"a", ""},
		{"!~#$%&'()*+,-./:;<=>?@[\\]^_`{|}", ""},
		{strings.Repeat("x", MaxMessageIDLen), ""},
		{"", "must not be empty"},
		{strings.Repeat("x", MaxMessageIDLen+1), "is 129 bytes, the limit is 128"},
		{"has space", "a space at byte 3"},
		{"tab\there", "control character 0x09 at byte 3"},
		{"nul\x00", "control character 0x00 at byte 3"},
		{"del\x7f", "control character 0x7f at byte 3"},
		{"café", "non-ASCII byte 0xc3 at byte 3"},
		{"\xff", "non-ASCII byte 0xff at byte 0"},
	} {
		err := ValidateMessageID(tc.id)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.id, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "message_id ")):
			t.Errorf("%q: %v, want an error containing %q", tc.id, err, tc.want)
		}
	}
}

// FuzzValidateMessageID: an id is accepted exactly when it is 1..128 bytes of visible ASCII,
// and every refusal names message_id.
func FuzzValidateMessageID(f *testing.F) {
	for _, s := range []string{"", "a", "0b0f6a64-2d5c-4b11-9a43-6c0e0a3a4f4e", "a b", "é", "\x00", "\x7f", "~", strings.Repeat("z", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		want := len(id) >= 1 && len(id) <= MaxMessageIDLen
		for i := 0; i < len(id) && want; i++ {
			want = id[i] > ' ' && id[i] < 0x7f
		}
		err := ValidateMessageID(id)
		if (err == nil) != want {
			t.Fatalf("%q: error %v, valid %v", id, err, want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "message_id ") {
			t.Fatalf("%q: error %q does not name message_id", id, err)
		}
	})
}

func TestParseRollupWindow(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true}, {"20", 20 * time.Millisecond, true}, {"40", 40 * time.Millisecond, true},
		{"100", 100 * time.Millisecond, true}, {"500", 500 * time.Millisecond, true}, {"0020", 20 * time.Millisecond, true},
		{"", 0, false}, {"10", 0, false}, {"-20", 0, false}, {"+20", 0, false}, {"20ms", 0, false}, {" 20", 0, false},
		{"20.0", 0, false}, {"1000", 0, false}, {"18446744073709551636", 0, false}, {"0x14", 0, false},
		{"000000000000000000000000000000000", 0, true}, {"00000000000000000000000000000000500", 500 * time.Millisecond, true},
	} {
		got, err := ParseRollupWindow(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRollupWindow(%q) = %v, %v", tc.in, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), "append_rollup_window must be one of 0, 20, 40, 100, 500") {
			t.Errorf("%q: error %q", tc.in, err)
		}
	}
}

// FuzzParseRollupWindow: a value is accepted exactly when it is decimal digits naming one of
// the windows, and then it is that window.
func FuzzParseRollupWindow(f *testing.F) {
	for _, s := range []string{"0", "20", "40", "100", "500", "00500", "", "-0", "1e2", "٢٠", "99999999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseRollupWindow(s)
		digits := s != ""
		for i := 0; i < len(s); i++ {
			digits = digits && s[i] >= '0' && s[i] <= '9'
		}
		trimmed := strings.TrimLeft(s, "0")
		if trimmed == "" && s != "" {
			trimmed = "0"
		}
		want := digits && (trimmed == "0" || trimmed == "20" || trimmed == "40" || trimmed == "100" || trimmed == "500")
		if (err == nil) != want {
			t.Fatalf("%q: %v, %v", s, d, err)
		}
		if err == nil && strconv.FormatInt(int64(d/time.Millisecond), 10) != trimmed {
			t.Fatalf("%q: %v", s, d)
		}
	})
}
