package channels

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseModes: no input panics; raw annotations are wanted only when the modes name
// ANNOTATION_SUBSCRIBE, and every accepted mode is a known one.
func FuzzParseModes(f *testing.F) {
	for _, s := range []string{`["SUBSCRIBE","ANNOTATION_SUBSCRIBE"]`, `["SUBSCRIBE"]`, `[]`, `null`, `"SUBSCRIBE"`, `[1]`, `["annotation_subscribe"]`, `["X"]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ann, err := parseModes(json.RawMessage(b))
		if err != nil {
			return
		}
		var modes []string
		if json.Unmarshal(b, &modes) != nil {
			if ann || (len(b) != 0 && string(b) != "null") {
				t.Fatalf("%q accepted", b)
			}
			return
		}
		want := false
		for _, m := range modes {
			switch strings.ToUpper(m) {
			case "SUBSCRIBE":
			case "ANNOTATION_SUBSCRIBE":
				want = true
			default:
				t.Fatalf("unknown mode %q accepted", m)
			}
		}
		if ann != want {
			t.Fatalf("%s: annotations %v", b, ann)
		}
	})
}
