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

// PipelinedVersionStore is a VersionStore whose appends and creates can be queued.
type PipelinedVersionStore interface {
	VersionStore
	channels.PipelinedHistory
	channels.PipelinedVersions
}

// RunPipelinedCreates queues creates of mutable messages between plain appends of one
// channel, nothing waited for in between: every one gets the next serial in queue order,
// and each create's aggregate and first version are stored with its serial (its history
// serial), readable through Message and ReadVersions, and listed by Read.
func RunPipelinedCreates(t *testing.T, s PipelinedVersionStore) {
	const n = 60
	type sent struct {
		msg    *protocol.Message
		create bool
		done   <-chan error
	}
	var out []sent
	for i := range n {
		if i%3 == 0 {
			serial := protocol.FormatSerial(base, "test", nextCounter())
			meta := protocol.VersionMeta{Serial: serial, TimestampMs: base, ClientID: "c1"}
			m := &protocol.Message{Event: "chat.message", Channel: "pipe-create", Data: []byte(fmt.Sprintf(`"c%d"`, i)), MessageID: protocol.NewUUID(),
				PublishedAtMs: base, Mutable: &protocol.Mutable{Action: protocol.ActionCreate, MessageSerial: serial, Version: meta}}
			agg := protocol.VersionedMessage{Channel: m.Channel, MessageSerial: serial, Event: m.Event, Data: m.Data,
				OriginalClientID: "c1", LatestAction: protocol.ActionCreate, LatestVersion: meta, CreatedAtMs: base}
			out = append(out, sent{m, true, s.CreateAsync(ctx, "app", m, agg)})
			continue
		}
		m := &protocol.Message{Event: "e", Channel: "pipe-create", Data: []byte(fmt.Sprintf(`"a%d"`, i)), PublishedAtMs: base}
		out = append(out, sent{m, false, s.AppendAsync(ctx, "app", m)})
	}
	for i, x := range out {
		if err := <-x.done; err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if x.msg.Serial != uint64(i+1) {
			t.Fatalf("message %d got serial %d, want %d", i, x.msg.Serial, i+1)
		}
		if !x.create {
			continue
		}
		if x.msg.Mutable.HistorySerial != x.msg.Serial {
			t.Fatalf("create %d: history serial %d, serial %d", i, x.msg.Mutable.HistorySerial, x.msg.Serial)
		}
		agg, err := s.Message(ctx, "app", "pipe-create", x.msg.Mutable.MessageSerial)
		if err != nil || agg.HistorySerial != x.msg.Serial || agg.LatestDeliverySerial != x.msg.Serial || string(agg.Data) != string(x.msg.Data) {
			t.Fatalf("create %d: aggregate %+v, %v", i, agg, err)
		}
		vs, _, err := s.ReadVersions(ctx, "app", "pipe-create", x.msg.Mutable.MessageSerial, channels.VersionQuery{Limit: 10})
		if err != nil || len(vs) != 1 || vs[0].HistorySerial != x.msg.Serial || vs[0].Action != protocol.ActionCreate {
			t.Fatalf("create %d: versions %+v, %v", i, vs, err)
		}
	}
	got := readAll(t, s, "app", "pipe-create")
	if len(got) != n {
		t.Fatalf("read %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if string(m.Data) != string(out[i].msg.Data) || (m.Mutable != nil) != out[i].create {
			t.Fatalf("read %d: %s (mutable %v)", i, m.Data, m.Mutable != nil)
		}
	}
}
