package channels_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
)

// FuzzDeltaStream publishes a fuzzed stream of messages (the input split at 0xff; the
// first byte picks the algorithm, conflation, the full-frame interval and where the client
// reports a lost base) to a V2 subscriber with deltas and one without, and requires every
// frame of the delta subscriber, read by the clients' rules (deltatest.Rebuilder), to be
// exactly the plain subscriber's frame.
func FuzzDeltaStream(f *testing.F) {
	for i := range 4 {
		var seeds [][]byte
		for k := range 6 {
			ev := tick(k, []string{"BTC", "ETH"}[k%2])
			seeds = append(seeds, []byte(ev.Data))
		}
		f.Add(append([]byte{byte(i * 37)}, bytes.Join(seeds, []byte{0xff})...))
	}
	f.Add([]byte{3, 'a', 0xff, 'b', 0xff, 0xff, '"', 0xff, '{', '}'})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 1 || len(in) > 4096 {
			return
		}
		mode, rest := in[0], in[1:]
		parts := bytes.Split(rest, []byte{0xff})
		if len(parts) > 64 {
			return
		}
		alg := []string{"fossil", "xdelta3"}[mode&1]
		conflate := mode&2 != 0
		h := deltaHub(t, func(a *config.App) {
			a.DeltaFullInterval = 1 + int(mode>>4)
			if conflate {
				a.DeltaConflationKeys = map[string]string{"market-*": "asset"}
			}
		})
		plain, ps := connectV2(t, h, channels.ConnOptions{})
		mustSubscribe(t, plain, ps, "market-spot", "")
		c, s := connectV2(t, h, channels.ConnOptions{})
		req := subReq(s, "market-spot", "")
		req.Delta, req.DeltaSet = alg, true
		if err := c.Subscribe(req); err != nil {
			t.Fatal(err)
		}
		r := newDeltaReader(t)
		for _, f := range s.Take() {
			if strings.Contains(f, "delta_compression_enabled") {
				r.Read(f)
			}
		}
		ps.Take()
		for i, part := range parts {
			data := string(part)
			if conflate && i%3 == 0 {
				data = `{"asset":"` + []string{"BTC", "ETH"}[i%2] + `","v":` + string(mustJSON(data)) + `}`
			}
			ev := channels.Event{Name: "e", Channels: []string{"market-spot"}, Data: data, NoDelta: mode&4 != 0 && i%5 == 4}
			if err := h.Publish(appID, ev); err != nil {
				t.Fatal(err)
			}
			want, got := ps.Take(), s.Take()
			if len(want) != 1 || len(got) != 1 {
				t.Fatalf("message %d: %d plain and %d delta frames", i, len(want), len(got))
			}
			if rebuilt := r.Read(got[0]); !r.Same(rebuilt, want[0]) {
				t.Fatalf("message %d rebuilt as\n%s\nwant\n%s\n(plain frame %s)", i, rebuilt, r.Expect(want[0]), want[0])
			}
			if mode&8 != 0 && i%7 == 3 {
				// The client lost its base: it drops its state and reports it.
				if err := c.DeltaSyncError(json.RawMessage(`{"channel":"market-spot"}`), ""); err != nil {
					t.Fatal(err)
				}
				r = newDeltaReader(t)
				r.Announce(alg)
			}
		}
	})
}

func mustJSON(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}
