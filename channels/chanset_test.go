package channels

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pushwire/pushwire/protocol"
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

// TestPresenceIDsInStep: the sorted member ids kept for the ack follow every add and remove,
// and the ack lists members in that order.
func TestPresenceIDsInStep(t *testing.T) {
	ch := newChannel("presence-x", protocol.Classify("presence-x"))
	want := map[string]bool{}
	rnd := rand.New(rand.NewPCG(7, 9))
	for i := 0; i < 500; i++ {
		id := fmt.Sprint("u", rnd.IntN(60))
		if want[id] {
			ch.removeMember(id)
			delete(want, id)
		} else {
			ch.addMember(id, &member{info: json.RawMessage(`{"n":1}`)})
			want[id] = true
		}
		keys := slices.Sorted(maps.Keys(want))
		if !slices.Equal(ch.ids, keys) || len(ch.members) != len(keys) {
			t.Fatalf("step %d: ids %v, members %d, want %v", i, ch.ids, len(ch.members), keys)
		}
	}
	var d struct {
		Presence struct {
			IDs   []string `json:"ids"`
			Count int      `json:"count"`
		} `json:"presence"`
	}
	if err := json.Unmarshal(ch.presenceData(), &d); err != nil || !slices.Equal(d.Presence.IDs, ch.ids) || d.Presence.Count != len(ch.ids) {
		t.Fatalf("ack data %+v (%v), ids %v", d, err, ch.ids)
	}
}
