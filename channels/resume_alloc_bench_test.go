package channels_test

import (
	"strconv"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/protocol"
)

// BenchmarkResumeManyChannels is one sockudo:resume of the resume storm (pwload abuse
// resume-storm): a connection subscribed to 500 channels, each with one stored message,
// resumes all of them from one message back. It reports the bytes allocated per channel
// resumed: what, at a server-wide pace of resumes, sets how often the garbage collector
// marks a heap holding every storm connection's subscriptions.
func BenchmarkResumeManyChannels(b *testing.B) {
	const n = 500
	app := config.DefaultApp()
	app.ApplyDefaults()
	h := channels.New([]config.App{app}, channels.Options{History: history.NewMemory(history.MemoryOptions{})})
	rs := &lockedSub{id: "2.1"}
	c, err := h.ConnectWith(appKey, rs, channels.ConnOptions{})
	if err != nil {
		b.Fatal(err)
	}
	pos := make(map[string]protocol.Position, n)
	for i := range n {
		ch := "storm-" + strconv.Itoa(i)
		if err := c.Subscribe(channels.SubscribeRequest{Channel: ch}); err != nil {
			b.Fatal(err)
		}
		acks, err := h.PublishAcks(appID, channels.Event{Name: "e", Channels: []string{ch}, Data: "x"})
		if err != nil {
			b.Fatal(err)
		}
		pos[ch] = protocol.Position{StreamID: acks[0].StreamID, Serial: acks[0].Serial - 1}
	}
	frame := resumeJSON(pos)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := c.Resume(frame); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(testing.AllocsPerRun(1, func() { _ = c.Resume(frame) }))/n, "allocs/channel")
}
