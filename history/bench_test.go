package history_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// benchStores makes fresh stores holding at least 20,000 messages per channel.
var benchStores = []struct {
	name string
	open func(b *testing.B) channels.History
}{
	{"memory", func(*testing.B) channels.History {
		return history.NewMemory(history.MemoryOptions{MaxMessagesPerChannel: 20000})
	}},
	{"postgres", func(b *testing.B) channels.History {
		return newPostgres(b, testkit.PostgresURL(b), history.PostgresOptions{MaxMessagesPerChannel: 1 << 30})
	}},
}

var tickData = []byte(`"{\"symbol\":\"ACME\",\"bid\":101.25,\"ask\":101.5,\"ts\":1767312245123}"`)

func tick(channel string) protocol.Message {
	return protocol.Message{Event: "tick", Channel: channel, Data: tickData, MessageID: protocol.NewUUID(),
		Tags: map[string]string{"symbol": "ACME"}}
}

// BenchmarkAppend stores b.N messages: on 1 channel from 1 writer, on 1 channel from 8
// writers (contending for its serial), and on 8 channels with a writer each. ns/op is per
// message; msgs/s is the aggregate throughput.
func BenchmarkAppend(b *testing.B) {
	for _, s := range benchStores {
		for _, shape := range []struct{ channels, writers int }{{1, 1}, {1, 8}, {8, 8}} {
			b.Run(fmt.Sprintf("%s/channels=%d/writers=%d", s.name, shape.channels, shape.writers), func(b *testing.B) {
				h := s.open(b)
				ctx := context.Background()
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := range shape.writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						channel := fmt.Sprintf("ticker-%d", w%shape.channels)
						for i := w; i < b.N; i += shape.writers {
							m := tick(channel)
							if err := h.Append(ctx, "app", &m); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// fill appends n messages to one channel, from 8 writers.
func fill(b *testing.B, h channels.History, channel string, n int) {
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				m := tick(channel)
				if err := h.Append(context.Background(), "app", &m); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

// BenchmarkRewind10k reads 10,000 stored messages oldest first in pages of 100, as a rewind
// or a cold resume does; one op is the whole rewind.
func BenchmarkRewind10k(b *testing.B) {
	for _, s := range benchStores {
		b.Run(s.name, func(b *testing.B) {
			h := s.open(b)
			ctx := context.Background()
			fill(b, h, "ticker", 10000)
			for b.Loop() {
				n, next := 0, uint64(1)
				for {
					p, err := h.Read(ctx, "app", "ticker", protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: 100, StartSerial: next})
					if err != nil {
						b.Fatal(err)
					}
					n += len(p.Items)
					if !p.HasMore {
						break
					}
					next = p.Items[len(p.Items)-1].Serial + 1
				}
				if n != 10000 {
					b.Fatalf("read %d messages", n)
				}
			}
			b.ReportMetric(10000*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkState reads the stream state of a channel retaining 10,000 messages, as every V2
// subscribe to a history channel does.
func BenchmarkState(b *testing.B) {
	for _, s := range benchStores {
		b.Run(s.name, func(b *testing.B) {
			h := s.open(b)
			fill(b, h, "ticker", 10000)
			for b.Loop() {
				st, err := h.State(context.Background(), "app", "ticker")
				if err != nil || st.Retained != 10000 {
					b.Fatalf("State = %+v, %v", st, err)
				}
			}
		})
	}
}

// BenchmarkAppendAsync queues b.N messages on a pipelined store without waiting between
// them (as the publish path does under load), keeping at most 2,000 in flight, on 1 channel
// and spread over 1,000 channels. ns/op is per message; msgs/s is the throughput.
func BenchmarkAppendAsync(b *testing.B) {
	for _, chans := range []int{1, 1000} {
		b.Run(fmt.Sprintf("postgres/channels=%d", chans), func(b *testing.B) {
			h := newPostgres(b, testkit.PostgresURL(b), history.PostgresOptions{MaxMessagesPerChannel: 1 << 30})
			ctx := context.Background()
			window := make(chan (<-chan error), benchWindow)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for res := range window {
					if err := <-res; err != nil {
						b.Error(err)
					}
				}
			}()
			b.ResetTimer()
			for i := range b.N {
				m := tick(fmt.Sprintf("ticker-%d", i%chans))
				window <- h.AppendAsync(ctx, "app", &m)
			}
			close(window)
			<-done
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// benchWindow is the most appends BenchmarkAppendAsync keeps in flight.
var benchWindow = envInt("PW_BENCH_WINDOW", 2000)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
