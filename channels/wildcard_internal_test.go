package channels

import (
	"slices"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/protocol"
)

// FuzzWildcardIndex adds and removes patterns (split from the input by '|', a leading '-'
// removes) and checks the index's matches for a channel against a scan of every pattern.
func FuzzWildcardIndex(f *testing.F) {
	f.Add("ticker:*|*-data|market-*-eu|*|-*|a*a", "market-btc-eu")
	f.Add("a*|ab*|abc*|*c|*bc|-ab*", "abc")
	f.Add("x*|x*|-x*", "x")
	f.Fuzz(func(t *testing.T, ops, channel string) {
		var w wildIndex
		held := map[string]bool{}
		for _, op := range strings.Split(ops, "|") {
			del := strings.HasPrefix(op, "-")
			p := strings.TrimPrefix(op, "-")
			if protocol.ValidateWildcard(p, 0) != nil {
				continue
			}
			if del {
				if held[p] {
					w.remove(p)
					delete(held, p)
				}
			} else if !held[p] {
				w.add(p)
				held[p] = true
			}
		}
		if w.size() != len(held) {
			t.Fatalf("size %d, want %d", w.size(), len(held))
		}
		got := w.match(channel, nil)
		var want []string
		for p := range held {
			pre, suf := protocol.SplitWildcard(p)
			if len(channel) >= len(pre)+len(suf) && strings.HasPrefix(channel, pre) && strings.HasSuffix(channel, suf) {
				want = append(want, p)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("match(%q) = %v, want %v (patterns %v)", channel, got, want, held)
		}
	})
}
