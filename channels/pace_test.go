package channels_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// TestResumePaced: a resume asks ConnOptions.Pace before each channel it works on, holding
// nothing (a publish to the channel it waits before goes through meanwhile), and stops
// unanswered when Pace reports the connection going away.
func TestResumePaced(t *testing.T) {
	h, _ := resumeHub(t)
	const n = 5
	pos := map[string]protocol.Position{}
	streams := map[string]string{}
	for i := range n {
		ch := fmt.Sprintf("p%d", i)
		streams[ch] = streamOf(t, h, ch, 2)
		pos[ch] = protocol.Position{StreamID: streams[ch], Serial: 1}
	}
	var asked []int // frames the connection had received at each Pace call
	var s interface{ Len() int }
	var c *channels.Conn
	stopAt := -1
	opts := channels.ConnOptions{Pace: func(k int) bool {
		if k != 1 {
			t.Errorf("Pace(%d): want one channel at a time", k)
		}
		asked = append(asked, s.Len())
		if len(asked) == 3 {
			// Nothing is held while the resume waits: another publisher's message to the
			// channel it is about to resume goes out now.
			if _, err := h.PublishAcks(appID, channels.Event{Name: "e", Channels: []string{"p2"}, Data: "x"}); err != nil {
				t.Errorf("publish during a pace wait: %v", err)
			}
		}
		return len(asked)-1 != stopAt
	}}
	c, sub := connectV2(t, h, opts)
	defer c.Disconnect()
	s = sub
	for ch := range pos {
		mustSubscribe(t, c, sub, ch, "")
	}
	sub.Take()
	mustResume(t, c, pos)
	if len(asked) != n {
		t.Fatalf("Pace asked %d times for %d channels", len(asked), n)
	}
	for i := 1; i < n; i++ {
		if asked[i] <= asked[i-1] {
			t.Fatalf("Pace calls saw %v frames: each channel's replay should come between two calls", asked)
		}
	}
	got := takeFrames(t, sub)
	if last := got[len(got)-1]; last.Event != "sockudo:resume_success" {
		t.Fatalf("last frame %s", last)
	}
	if o := decodeOutcome(t, got[len(got)-1]); len(o.Recovered) != n {
		t.Fatalf("recovered %d of %d", len(o.Recovered), n)
	}

	// A pacer that says the connection is going away stops the resume: no more replays, no
	// resume_success.
	asked, stopAt = nil, 2
	c2, sub2 := connectV2(t, h, opts)
	defer c2.Disconnect()
	s = sub2
	for ch := range pos {
		mustSubscribe(t, c2, sub2, ch, "")
	}
	sub2.Take()
	mustResume(t, c2, pos)
	got = takeFrames(t, sub2)
	if len(asked) != 3 {
		t.Fatalf("Pace asked %d times, want 3 (stopped at the third)", len(asked))
	}
	for _, f := range got {
		if strings.HasPrefix(f.Event, "sockudo:resume") {
			t.Fatalf("a stopped resume answered: %s", f)
		}
	}
}
