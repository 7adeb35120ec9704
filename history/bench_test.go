package history_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

func benchStores(b *testing.B) map[string]func(b *testing.B) channels.History {
	return map[string]func(b *testing.B) channels.History{
		"memory": func(*testing.B) channels.History {
			return history.NewMemory(history.MemoryOptions{MaxMessagesPerChannel: 20000})
		},
		"postgres": func(b *testing.B) channels.History {
			p, err := history.NewPostgres(context.Background(), testkit.PostgresURL(b), history.PostgresOptions{MaxMessagesPerChannel: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(p.Close)
			return p
		},
	}
}

var tickData = []byte(`"{\"symbol\":\"ACME\",\"bid\":101.25,\"ask\":101.5,\"ts\":1767312245123}"`)

// BenchmarkAppend stores messages on 1 channel, and on 8 channels from 8 goroutines.
func BenchmarkAppend(b *testing.B) {
	for name, mk := range benchStores(b) {
		for _, chans := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/channels=%d", name, chans), func(b *testing.B) {
				h := mk(b)
				ctx := context.Background()
				b.ResetTimer()
				var wg sync.WaitGroup
				per := b.N/chans + 1
				for c := range chans {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range per {
							m := protocol.Message{Event: "tick", Channel: fmt.Sprintf("ticker-%d", c), Data: tickData, MessageID: protocol.NewUUID()}
							if err := h.Append(ctx, "app", &m); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(per*chans)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// BenchmarkRewind10k reads 10,000 stored messages oldest first in pages of 100, as a rewind
// or a cold resume does.
func BenchmarkRewind10k(b *testing.B) {
	for name, mk := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			h := mk(b)
			ctx := context.Background()
			for range 10000 {
				m := protocol.Message{Event: "tick", Channel: "ticker", Data: tickData}
				if err := h.Append(ctx, "app", &m); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
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
		})
	}
}
