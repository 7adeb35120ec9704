package integration

import (
	"fmt"
	"reflect"
	"regexp"
	"testing"

	"github.com/pushwire/pushwire/delta"
	"github.com/pushwire/pushwire/delta/deltatest"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// deltaBases rebuilds delta-compressed frames like sockudo-js (deltatest.Rebuilder).
type deltaBases struct{ *deltatest.Rebuilder }

func newDeltaBases() deltaBases { return deltaBases{deltatest.NewRebuilder(delta.Apply)} }

// rebuild returns the full frame text a raw frame stands for, and whether it was a delta.
func (b deltaBases) rebuild(t testing.TB, raw string) (string, bool) {
	t.Helper()
	out, isDelta, err := b.Rebuild([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return string(out), isDelta
}

// checkRebuilt fails unless got, rebuilt from message i's frame (a delta when isDelta), is
// what the server defines for the message a plain client received as plain: plain itself
// for a full frame; for a delta its lean target (protocol.DeltaTarget), from which the
// clients surface the data they surface from plain.
func checkRebuilt(t *testing.T, i int, got string, isDelta bool, plain string) {
	t.Helper()
	want := plain
	if isDelta {
		lean, ok := protocol.DeltaTarget([]byte(plain))
		if !ok {
			t.Fatalf("message %d: a delta for a message without a lean target: %s", i, plain)
		}
		want = string(lean)
	}
	if got != want {
		t.Fatalf("message %d rebuilt as\n%s\nwant\n%s", i, got, want)
	}
	if !isDelta {
		return
	}
	d, err := protocol.ClientData([]byte(got), true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := protocol.ClientData([]byte(plain), false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, p) {
		t.Fatalf("message %d: the clients surface %#v from the delta, %#v from the plain frame", i, d, p)
	}
}

// TestDeltaCompression: a V2 client that opts in rebuilds, from mostly delta frames and with
// both algorithms, the frames a plain V2 client receives (the lean target of each for
// deltas, surfacing the same data).
func TestDeltaCompression(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1})
	for _, tc := range []struct {
		name, alg string
		setup     func(c *v2Client, ch string)
	}{
		{"connection-wide fossil", "fossil", func(c *v2Client, ch string) {
			c.send(t, `{"event":"sockudo:enable_delta_compression","data":{"algorithms":["fossil","xdelta3"]}}`)
			c.expect(t, `{"event":"sockudo:delta_compression_enabled","data":{"enabled":true,"algorithm":"fossil"}}`)
			c.subscribeV2(t, ch, nil)
		}},
		{"per-subscription xdelta3", "xdelta3", func(c *v2Client, ch string) {
			c.subscribeV2(t, ch, map[string]any{"delta": map[string]any{"enabled": true, "algorithm": "xdelta3"}})
			c.expect(t, `{"event":"sockudo:delta_compression_enabled","channel":"`+ch+`","data":{"enabled":true,"algorithm":"xdelta3","channel":"`+ch+`"}}`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := "delta-" + map[bool]string{true: "f", false: "x"}[tc.name[0] == 'c']
			plain := connectV2(t, s, v2Options{})
			plain.subscribeV2(t, ch, nil)
			c := connectV2(t, s, v2Options{})
			tc.setup(c, ch)
			bases, deltas, wire, full := newDeltaBases(), 0, 0, 0
			// The announcement (consumed by setup) sets the clients' default algorithm, which
			// the delta frames then leave out.
			bases.rebuild(t, `{"event":"sockudo:delta_compression_enabled","data":{"enabled":true,"algorithm":"`+tc.alg+`"}}`)
			const n = 30
			var firstWant, firstRaw string
			for i := range n {
				publish(t, s, map[string]any{"name": "price", "channel": ch,
					"data": fmt.Sprintf(`{"symbol":"BTC-USD","bid":%d.5,"ask":%d.9,"volume_24h":"81234.551","venue":"pushwire-exchange","ts":17000000000%02d}`, 64000+i, 64000+i, i)})
				if i == 0 {
					// Awaited: a new subscription's first live messages are held back (up to
					// 150 ms, for a resume) and go out as full frames.
					firstWant, firstRaw = plain.next(t), c.next(t)
				}
			}
			for i := range n {
				want, raw := firstWant, firstRaw
				if i > 0 {
					want, raw = plain.next(t), c.next(t)
				}
				got, isDelta := bases.rebuild(t, raw)
				checkRebuilt(t, i, got, isDelta, want)
				if isDelta {
					deltas++
				} else if i > 1 {
					t.Errorf("message %d went out full", i)
				}
				wire += len(raw)
				full += len(want)
			}
			// Message 0 was held (full); message 1 may go out full too when its fan-out
			// races with the end of the hold (it is sent full rather than before the held
			// frames); every later one is a delta.
			if deltas < n-2 {
				t.Errorf("%d of %d messages were deltas", deltas, n)
			}
			t.Logf("%s: %d bytes on the wire for %d bytes of frames (%.0f%%)", tc.name, wire, full, 100*float64(wire)/float64(full))
			// A delta_sync_error makes the next message full again.
			c.send(t, `{"event":"sockudo:delta_sync_error","data":{"channel":"`+ch+`"}}`)
			c.pingV2(t) // the server has handled the sync error before the next publish
			publish(t, s, map[string]any{"name": "price", "channel": ch, "data": "after resync"})
			plain.next(t)
			if raw := c.next(t); !regexp.MustCompile(`,"__delta_seq":0}$`).MatchString(raw) {
				t.Fatalf("after delta_sync_error: %s", raw)
			}
		})
	}
}
