package channels

import (
	"fmt"
	"maps"
	"testing"
)

// TestChanSet checks chanSet against a map through growth past the slice, updates and
// deletes.
func TestChanSet(t *testing.T) {
	for _, n := range []int{1, chanSetSmall, chanSetSmall + 1, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var s chanSet
			want := map[string]string{}
			check := func() {
				t.Helper()
				got := map[string]string{}
				for name := range s.names() {
					u, ok := s.get(name)
					if !ok {
						t.Fatalf("names yields %q, get misses it", name)
					}
					got[name] = u
				}
				if !maps.Equal(got, want) {
					t.Fatalf("set %v, want %v", got, want)
				}
			}
			for i := 0; i < n; i++ {
				name := fmt.Sprint("ch-", i)
				s.set(name, "")
				want[name] = ""
			}
			check()
			s.set("ch-0", "u1") // update in place
			want["ch-0"] = "u1"
			check()
			for i := 0; i < n; i += 2 {
				name := fmt.Sprint("ch-", i)
				if !s.del(name) {
					t.Fatalf("del %s: not there", name)
				}
				delete(want, name)
			}
			if s.del("nope") || s.has("nope") {
				t.Fatal("unknown channel found")
			}
			check()
			s.clear()
			clear(want)
			check()
		})
	}
}
