package historytest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// RunPipelined checks a PipelinedHistory's queued appends, as two nodes sharing one store
// see them: writers on both handles queue appends to many channels without waiting, each
// writer's messages of a channel get increasing serials in queue order, every channel's
// serials are 1..n with no gap and no duplicate, and reads return exactly what was
// acknowledged. open returns two handles on a fresh, empty store (a store with a single
// handle passes itself twice).
func RunPipelined(t *testing.T, open func(t *testing.T) (a, b channels.PipelinedHistory)) {
	a, b := open(t)
	const (
		chans   = 20
		writers = 3 // per handle
		each    = 60
	)
	type sent struct {
		msg  *protocol.Message
		done <-chan error
	}
	var mu sync.Mutex
	all := map[string][]*protocol.Message{}
	var wg sync.WaitGroup
	for hi, h := range []channels.PipelinedHistory{a, b} {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var out []sent
				for j := range each {
					for c := range chans {
						m := &protocol.Message{Event: "e", Channel: fmt.Sprintf("pipe-%d", c), Data: []byte(fmt.Sprintf(`"%d-%d-%d"`, hi, w, j)), PublishedAtMs: base}
						out = append(out, sent{m, h.AppendAsync(ctx, "app", m)})
					}
				}
				last := map[string]uint64{}
				for _, s := range out {
					if err := <-s.done; err != nil {
						t.Error(err)
						return
					}
					if s.msg.Serial <= last[s.msg.Channel] {
						t.Errorf("%s: writer %d.%d got serial %d after %d: not in queue order", s.msg.Channel, hi, w, s.msg.Serial, last[s.msg.Channel])
						return
					}
					last[s.msg.Channel] = s.msg.Serial
					mu.Lock()
					all[s.msg.Channel] = append(all[s.msg.Channel], s.msg)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const total = 2 * writers * each
	for c := range chans {
		name := fmt.Sprintf("pipe-%d", c)
		bySerial := map[uint64]string{}
		for _, m := range all[name] {
			if _, dup := bySerial[m.Serial]; dup {
				t.Fatalf("%s: serial %d handed out twice", name, m.Serial)
			}
			bySerial[m.Serial] = string(m.Data)
		}
		for n := uint64(1); n <= total; n++ {
			if _, ok := bySerial[n]; !ok {
				t.Fatalf("%s: serial %d skipped", name, n)
			}
		}
		for _, h := range []channels.PipelinedHistory{a, b} {
			got := readAll(t, h, "app", name)
			if len(got) != total {
				t.Fatalf("%s: read %d messages, want %d", name, len(got), total)
			}
			for i, m := range got {
				if m.Serial != uint64(i+1) || string(m.Data) != bySerial[m.Serial] {
					t.Fatalf("%s: read serial %d data %s, want serial %d data %s", name, m.Serial, m.Data, i+1, bySerial[uint64(i+1)])
				}
			}
		}
	}
}
