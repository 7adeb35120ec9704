package push_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/push"
	"github.com/pushwire/pushwire/push/pushtest"
)

// pageStore records the largest page the service planned and claimed.
type pageStore struct {
	push.Store
	maxPlan, maxClaim atomic.Int64
}

func (s *pageStore) PlanPublish(ctx context.Context, p *push.Publish, ds []*push.Delivery, done bool) (int, error) {
	setMax(&s.maxPlan, len(ds))
	return s.Store.PlanPublish(ctx, p, ds, done)
}

func (s *pageStore) ClaimDeliveries(ctx context.Context, now, lease time.Time, limit int) ([]*push.Delivery, error) {
	ds, err := s.Store.ClaimDeliveries(ctx, now, lease, limit)
	setMax(&s.maxClaim, len(ds))
	return ds, err
}

func setMax(a *atomic.Int64, n int) {
	for {
		old := a.Load()
		if int64(n) <= old || a.CompareAndSwap(old, int64(n)) {
			return
		}
	}
}

// countingProvider accepts everything and samples the live heap every `every` sends.
type countingProvider struct {
	n     atomic.Int64
	every int64
	mu    sync.Mutex
	peak  uint64
}

func (c *countingProvider) Send(context.Context, *push.Device, *push.Notification) push.Result {
	if n := c.n.Add(1); c.every > 0 && n%c.every == 0 {
		c.mu.Lock()
		c.peak = max(c.peak, liveHeap())
		c.mu.Unlock()
	}
	return push.Result{Outcome: push.Delivered}
}

// liveHeap is the heap in use after a forced collection (runtime/metrics).
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestPublishTo100kRecipients publishes to a channel with 100,000 subscribed devices: the
// planner and dispatcher work in bounded pages, and the heap beyond what the store keeps
// (one delivery record per recipient) stays bounded.
func TestPublishTo100kRecipients(t *testing.T) {
	const n = 100_000
	ctx := context.Background()
	store := &pageStore{Store: push.NewMemory()}
	for i := range n {
		id := fmt.Sprintf("dev-%06d", i)
		d := pushtest.Device("app-id", id, fmt.Sprintf("user-%d", i%5000))
		if _, err := store.PutDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		if _, err := store.PutSubscription(ctx, push.Subscription{AppID: "app-id", Channel: "big", DeviceID: id}); err != nil {
			t.Fatal(err)
		}
	}
	prov := &countingProvider{every: n / 4}
	app := config.DefaultApp()
	app.ApplyDefaults()
	svc, err := push.New([]config.App{app}, push.Options{Store: store, Providers: map[string]map[push.Platform]push.Provider{"app-id": {push.FCM: prov}}})
	if err != nil {
		t.Fatal(err)
	}
	before := liveHeap()
	req, _ := push.ParsePublish([]byte(`{"recipients":[{"type":"channel","channel":"big"}],"payload":{"title":"Sale","body":"50% off"}}`), time.Now())
	p, perr := svc.Publish(ctx, "app-id", req)
	if perr != nil {
		t.Fatal(perr)
	}
	if err := svc.Step(ctx); err != nil {
		t.Fatal(err)
	}
	after := liveHeap()
	st, _, _, _, _ := svc.Status(ctx, "app-id", p.ID, "", 1)
	if prov.n.Load() != n || st.Counters.Succeeded != n || st.State != push.PublishSucceeded {
		t.Fatalf("sent %d, status %s %+v", prov.n.Load(), st.State, st.Counters)
	}
	if store.maxPlan.Load() > 1000 || store.maxClaim.Load() > 512 {
		t.Errorf("pages: planned %d, claimed %d at once", store.maxPlan.Load(), store.maxClaim.Load())
	}
	stored := int64(after) - int64(before)
	transient := int64(prov.peak) - int64(after)
	t.Logf("live heap: %d MB before, %d MB after (%d B per stored delivery), peak during dispatch %d MB above the final heap",
		before>>20, after>>20, stored/n, transient>>20)
	if transient > 64<<20 {
		t.Errorf("the dispatch held %d MB beyond the stored records", transient>>20)
	}
	if stored/n > 1024 {
		t.Errorf("%d bytes per stored delivery", stored/n)
	}
}

// BenchmarkPublish100k sends one publish to 100,000 devices (a third each on APNs, FCM and
// Web Push) through the fake providers over TLS, with the real provider clients. It reports
// deliveries per second and the peak live heap.
func BenchmarkPublish100k(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("PUSH_BENCH_N")); err == nil && v > 0 {
		n = v // smaller runs for profiling
	}
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		e := newEnv(b, nil)
		e.apns.CountOnly, e.fcm.CountOnly, e.web.CountOnly = true, true, true
		for i := range n {
			id := fmt.Sprintf("dev-%06d", i)
			d := pushtest.Device("app", id, "")
			switch i % 3 {
			case 0:
				d.Platform, d.Token = push.APNs, fmt.Sprintf("%064x", i)
			case 2:
				ws := e.web.Subscribe()
				d.Platform, d.Token, d.Web = push.Web, "", &push.WebSubscription{Endpoint: ws.Endpoint, P256dh: ws.P256dh, Auth: ws.Auth}
			}
			if _, err := e.store.PutDevice(ctx, d); err != nil {
				b.Fatal(err)
			}
			if _, err := e.store.PutSubscription(ctx, push.Subscription{AppID: "app", Channel: "big", DeviceID: id}); err != nil {
				b.Fatal(err)
			}
		}
		base := liveHeap()
		var peak atomic.Uint64
		stop := make(chan struct{})
		go func() {
			tk := time.NewTicker(500 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tk.C:
					s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
					metrics.Read(s)
					if v := s[0].Value.Uint64(); v > peak.Load() {
						peak.Store(v)
					}
				}
			}
		}()
		b.StartTimer()
		cpu0 := cpuTime()
		start := time.Now()
		req, _ := push.ParsePublish([]byte(`{"recipients":[{"type":"channel","channel":"big"}],"payload":{"title":"Sale","body":"50% off","templateData":{"sku":"A1"}}}`), time.Now())
		p, perr := e.svc.Publish(ctx, "app", req)
		if perr != nil {
			b.Fatal(perr)
		}
		if err := e.svc.Step(ctx); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		cpu := cpuTime() - cpu0
		b.StopTimer()
		close(stop)
		_, _, _, _, _ = e.svc.Status(ctx, "app", p.ID, "", 1)
		got := e.apns.Accepted() + e.fcm.Accepted() + e.web.Accepted()
		if got != n {
			b.Fatalf("delivered %d of %d", got, n)
		}
		b.ReportMetric(float64(n)/el.Seconds(), "deliveries/s")
		b.ReportMetric(float64(n)/cpu.Seconds(), "deliveries/cpu-s")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
		b.ReportMetric(float64(base)/(1<<20), "heap-before-MB")
	}
}

// cpuTime is the CPU time (user + system) of this process: the benchmark runs pushwire and
// the three fakes in one process, on a shared machine, so deliveries per CPU-second is the
// figure that does not depend on what else runs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
