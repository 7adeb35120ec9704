package server

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// append_rollup_window on a V2 URL: one of 0, 20, 40, 100, 500 ms, else an HTTP 400 naming
// the parameter; V1 URLs ignore it (as Sockudo does).
func TestRollupWindowParam(t *testing.T) {
	for _, tc := range []struct {
		query string
		v     protocol.Version
		want  time.Duration
		bad   bool
	}{
		{"", protocol.V2, 0, false},
		{"append_rollup_window=0", protocol.V2, 0, false},
		{"append_rollup_window=20", protocol.V2, 20 * time.Millisecond, false},
		{"append_rollup_window=40", protocol.V2, 40 * time.Millisecond, false},
		{"append_rollup_window=100", protocol.V2, 100 * time.Millisecond, false},
		{"append_rollup_window=500&append_mode=full", protocol.V2, 500 * time.Millisecond, false},
		{"append_rollup_window=33", protocol.V2, 0, true},
		{"append_rollup_window=", protocol.V2, 0, true},
		{"append_rollup_window=fast", protocol.V2, 0, true},
		{"append_rollup_window=33", protocol.V1, 0, false},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		p, why := parseConnParams(tc.v, q)
		switch {
		case tc.bad && !strings.Contains(why, "append_rollup_window must be one of 0, 20, 40, 100, 500"):
			t.Errorf("%s (V%d): reason %q", tc.query, tc.v, why)
		case !tc.bad && (why != "" || p.rollup != tc.want):
			t.Errorf("%s (V%d): rollup %v, reason %q", tc.query, tc.v, p.rollup, why)
		}
	}
}
