package load

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// TestMain lets this test binary serve as a pwload worker process (see startRemote).
func TestMain(m *testing.M) {
	if os.Getenv(WorkerEnv) != "" {
		if err := RunWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	testkit.Main(m) // removes the server binary the smoke run built
}

func TestParseArgsDefaults(t *testing.T) {
	c, err := ParseArgs(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "ws://127.0.0.1:6001" || c.HTTPURL != "http://127.0.0.1:6001" {
		t.Errorf("URLs = %q, %q", c.URL, c.HTTPURL)
	}
	if c.AppID != "app-id" || c.Key != "app-key" || c.Secret != "app-secret" || c.Protocol != 7 {
		t.Errorf("app = %q %q %q protocol %d", c.AppID, c.Key, c.Secret, c.Protocol)
	}
	if got := c.Rates(); !slices.Equal(got, []float64{100}) {
		t.Errorf("Rates() = %v", got)
	}
}

func TestParseArgsScenarioAndOverrides(t *testing.T) {
	c, err := ParseArgs([]string{"--scenario", "fanout", "--n", "300", "--port", "7000", "--host", "10.0.0.1", "--duration=2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subscribers != 300 {
		t.Errorf("explicit --n lost: %d", c.Subscribers)
	}
	if c.Layout != LayoutShared || c.Mode != ModeAPI || c.Payload != 100 || c.Rate != 100 || !c.RampAuto {
		t.Errorf("preset not applied: %+v", c)
	}
	if c.Duration != 2*time.Second {
		t.Errorf("explicit --duration lost: %v", c.Duration)
	}
	if c.URL != "ws://10.0.0.1:7000" || c.HTTPURL != "http://10.0.0.1:7000" {
		t.Errorf("URLs = %q %q", c.URL, c.HTTPURL)
	}

	c, err = ParseArgs([]string{"-scenario=chat", "--url", "ws://h:1", "--http-url", "http://api:2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeClient || c.ChannelType != "private" || c.Layout != LayoutRooms || c.RoomSize != 4 || c.Subscribers != 2000 {
		t.Errorf("chat preset: %+v", c)
	}
	if c.HTTPURL != "http://api:2" {
		t.Errorf("HTTPURL = %q", c.HTTPURL)
	}
	if c.ChannelCount() != 501 {
		t.Errorf("ChannelCount = %d, want 500 rooms + 1", c.ChannelCount())
	}

	c, err = ParseArgs([]string{"--ramp", "10, 20,40", "--protocol", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Rates(); !slices.Equal(got, []float64{100, 10, 20, 40}) {
		t.Errorf("Rates() = %v", got)
	}
	if c.Protocol != 2 || !strings.Contains(wsURL(c.URL, c.Key, 2), "protocol=2") {
		t.Errorf("protocol 2 not applied")
	}

	for _, name := range ScenarioNames() {
		if _, err := ParseArgs([]string{"--scenario", name}, io.Discard); err != nil {
			t.Errorf("scenario %s: %v", name, err)
		}
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--scenario", "nope"},
		{"--protocol", "5"},
		{"--layout", "star"},
		{"--mode", "client"}, // public channels take no client events
		{"--ramp", "10,x"},
		{"--mode", "none", "--ramp", "10"},
		{"--url", "http://x:1"},
		{"--n", "0"},
		{"extra"},
	} {
		if _, err := ParseArgs(args, io.Discard); err == nil {
			t.Errorf("ParseArgs(%q) accepted", args)
		}
	}
}

func TestLayouts(t *testing.T) {
	c := &Config{Subscribers: 10, RoomSize: 4, Prefix: "b", SharedEvery: 5}
	cases := []struct {
		layout, ctype string
		conn          int
		want          []string
	}{
		{LayoutShared, "public", 7, []string{"b-shared"}},
		{LayoutOwn, "public", 7, []string{"b-7"}},
		{LayoutOwnShared, "public", 7, []string{"b-7", "b-shared"}},
		{LayoutRooms, "private", 7, []string{"private-b-1"}},
		{LayoutRooms, "presence", 8, []string{"presence-b-2"}},
	}
	for _, tc := range cases {
		c.Layout, c.ChannelType = tc.layout, tc.ctype
		var got []string
		for _, ch := range c.Channels(tc.conn) {
			got = append(got, c.ChannelName(ch))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s/%s conn %d: %v, want %v", tc.layout, tc.ctype, tc.conn, got, tc.want)
		}
	}
	c.Layout, c.ChannelType = LayoutOwnShared, "public"
	shared := 0
	for k := range 100 {
		if c.publishChannel(k) == 0 {
			shared++
		}
	}
	if shared != 20 {
		t.Errorf("own+shared with shared-every 5: %d of 100 publishes to the shared channel", shared)
	}
}

func TestNextRate(t *testing.T) {
	cases := []struct {
		last                 float64
		lastHeld             bool
		held, failed, expect float64
	}{
		{100, true, 100, 0, 200}, // still climbing
		{100, false, 0, 100, 50}, // nothing held yet: halve
		{50, false, 0, 50, 25},   //
		{25, true, 25, 50, 37.5}, // bisect
		{37.5, false, 25, 37.5, 31.25},
		{26, true, 26, 28, 0}, // within 10%: done
	}
	for _, tc := range cases {
		if got := NextRate(tc.last, tc.lastHeld, tc.held, tc.failed); got != tc.expect {
			t.Errorf("NextRate(%v) = %v, want %v", tc, got, tc.expect)
		}
	}
}

func TestPercentiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	s := h.Snapshot()
	if s.N != 1000 || s.MaxUS != 1_000_000 {
		t.Fatalf("N = %d, max = %d", s.N, s.MaxUS)
	}
	for _, tc := range []struct{ q, want float64 }{{50, 500_000}, {90, 900_000}, {99, 990_000}, {100, 1_000_000}} {
		got := s.Percentile(tc.q)
		if math.Abs(got-tc.want)/tc.want > 0.016 {
			t.Errorf("p%g = %.0f µs, want %.0f ± 1.6%%", tc.q, got, tc.want)
		}
	}
	// Exact below 64 µs.
	var small Histogram
	for _, us := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10} {
		small.Record(time.Duration(us) * time.Microsecond)
	}
	if got := small.Snapshot().Percentile(50); got != 5 {
		t.Errorf("p50 of 1..10 µs = %v, want 5", got)
	}
	if got := small.Snapshot().Percentile(90); got != 9 {
		t.Errorf("p90 of 1..10 µs = %v, want 9", got)
	}
	var empty Histogram
	if got := empty.Snapshot().Summarize(); got != (Summary{}) {
		t.Errorf("empty summary = %+v", got)
	}
}

func TestPercentilesAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]float64, 20000)
	for i := range vals {
		us := r.ExpFloat64() * 5000 // exponential, mean 5 ms
		vals[i] = math.Floor(us)
		h.Record(time.Duration(us * float64(time.Microsecond)))
	}
	slices.Sort(vals)
	s := h.Snapshot()
	for _, q := range []float64{50, 90, 99, 99.9} {
		exact := vals[int(math.Ceil(q/100*float64(len(vals))))-1]
		if got := s.Percentile(q); math.Abs(got-exact) > 0.016*exact+1 {
			t.Errorf("p%g = %.0f, exact %.0f", q, got, exact)
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for i := range 500 {
		d := time.Duration(i*37%1000) * time.Millisecond
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
		all.Record(d)
	}
	m := a.Snapshot()
	m.Merge(b.Snapshot())
	// Through JSON, as worker processes send it.
	js, _ := json.Marshal(m)
	var back HistSnapshot
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	want := all.Snapshot()
	if back.N != want.N || back.MaxUS != want.MaxUS || back.SumUS != want.SumUS || !slices.Equal(back.Buckets, want.Buckets) {
		t.Errorf("merged histogram differs from the whole")
	}
}

func TestHistIndexBounds(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 20, 1<<40 + 12345, math.MaxUint64 >> 1} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d out of range", v, i)
		}
		if lo, hi := histLow(i), histHigh(i); v < lo || v > hi {
			t.Errorf("%d in bucket %d = [%d, %d]", v, i, lo, hi)
		}
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	ts := time.Date(2026, 11, 23, 1, 2, 3, 456789, time.UTC).UnixNano()
	p := EncodePayload(ts, 3, 12345, 100)
	if len(p) != 100 {
		t.Errorf("len = %d, want 100", len(p))
	}
	if !strings.HasPrefix(p, "pwl:") || strings.ContainsAny(p, "\"\\") {
		t.Errorf("payload %q", p)
	}
	// As a subscriber sees it: inside an event frame, and inside a presence member's
	// user_info, which is JSON in a JSON string.
	frame, _ := json.Marshal(map[string]string{"event": "bench", "channel": "c", "data": p})
	info, _ := json.Marshal(map[string]any{"user_id": "u1", "user_info": map[string]string{"t": p}})
	member, _ := json.Marshal(map[string]string{"event": "pusher_internal:member_added", "channel": "presence-x", "data": string(info)})
	for _, f := range [][]byte{frame, member} {
		gotTS, phase, seq, ok := DecodePayload(f)
		if !ok || gotTS != ts || phase != 3 || seq != 12345 {
			t.Errorf("DecodePayload(%s) = %d %d %d %v", f, gotTS, phase, seq, ok)
		}
	}
	// Shorter than the header: the header alone.
	if short := EncodePayload(ts, 0, 1, 0); !strings.HasSuffix(short, ":0:1:") {
		t.Errorf("short payload %q", short)
	}
	for _, bad := range []string{`{"data":"nothing"}`, `pwl:12:3`, `pwl:x:1:2:`, `pwl:12345678901234567890123:1:2:`} {
		if _, _, _, ok := DecodePayload([]byte(bad)); ok {
			t.Errorf("DecodePayload(%q) accepted", bad)
		}
	}
	if ch := frameChannel(frame); string(ch) != "c" {
		t.Errorf("frameChannel = %q", ch)
	}
	if ev := frameEvent(member); string(ev) != "pusher_internal:member_added" {
		t.Errorf("frameEvent = %q", ev)
	}
}

func TestSignedEventRequest(t *testing.T) {
	now := time.Now()
	req, err := SignedEventRequest(context.Background(), "http://127.0.0.1:1/", "app-id", "app-key", "app-secret", "bench-shared", "bench", "pwl:1:0:0:", now)
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != http.MethodPost || req.URL.Path != "/apps/app-id/events" {
		t.Fatalf("%s %s", req.Method, req.URL.Path)
	}
	body, _ := io.ReadAll(req.Body)
	q, err := protocol.ParseAPIQuery(req.URL.RawQuery)
	if err != nil {
		t.Fatal(err)
	}
	if q.AuthKey != "app-key" || q.AuthVersion != "1.0" {
		t.Errorf("auth_key %q auth_version %q", q.AuthKey, q.AuthVersion)
	}
	if !q.VerifyAPISignature("app-secret", http.MethodPost, "/apps/app-id/events") {
		t.Error("signature does not verify")
	}
	if q.VerifyAPISignature("other-secret", http.MethodPost, "/apps/app-id/events") {
		t.Error("signature verifies with another secret")
	}
	if err := q.CheckBodyMD5(http.MethodPost, body); err != nil {
		t.Error(err)
	}
	if err := q.CheckTimestamp(now); err != nil {
		t.Error(err)
	}
	var ev map[string]string
	if err := json.Unmarshal(body, &ev); err != nil || ev["name"] != "bench" || ev["channel"] != "bench-shared" || ev["data"] != "pwl:1:0:0:" {
		t.Errorf("body %s", body)
	}
}

func TestChannelAuth(t *testing.T) {
	c := &Config{Key: "app-key", Secret: "app-secret", Protocol: 7}
	var f struct {
		Event string            `json:"event"`
		Data  map[string]string `json:"data"`
	}
	if err := json.Unmarshal(subscribeFrame(c, "private-room", "1.2", 0), &f); err != nil {
		t.Fatal(err)
	}
	if f.Event != "pusher:subscribe" || !protocol.VerifyAuth("app-key", "app-secret", f.Data["auth"], "1.2:private-room") {
		t.Errorf("private subscribe %+v", f)
	}
	f.Data = nil
	c.Protocol = 2
	if err := json.Unmarshal(subscribeFrame(c, "presence-room", "1.2", 7), &f); err != nil {
		t.Fatal(err)
	}
	cd := f.Data["channel_data"]
	if f.Event != "sockudo:subscribe" || !protocol.VerifyAuth("app-key", "app-secret", f.Data["auth"], "1.2:presence-room:"+cd) {
		t.Errorf("presence subscribe %+v", f)
	}
	if !strings.Contains(cd, `"user_id":"u7"`) || !strings.Contains(cd, "pwl:") {
		t.Errorf("channel_data %s", cd)
	}
	if f.Data = nil; json.Unmarshal(subscribeFrame(c, "public", "1.2", 0), &f) != nil || f.Data["auth"] != "" {
		t.Errorf("public subscribe carries auth: %+v", f)
	}
}

func TestMergeStatsDelivery(t *testing.T) {
	// Two shards of a fan-out: 3 + 2 subscribers on channel 0, 10 publishes accepted.
	a := ShardStats{Attempted: 3, Connected: 3, Subs: map[int]int{0: 3}, Phases: []PhaseShard{{Received: 30}}}
	b := ShardStats{Attempted: 3, Connected: 2, ConnectErrors: 1, Disconnects: 1, CloseCodes: map[string]int{"4100": 1},
		Subs: map[int]int{0: 2}, Phases: []PhaseShard{{Received: 18, ClientSent: map[int]int64{4: 2}}}}
	m := MergeStats([]ShardStats{a, b}, 1)
	if m.Attempted != 6 || m.Connected != 5 || m.ConnectErrors != 1 || m.Disconnects != 1 || m.CloseCodes["4100"] != 1 {
		t.Errorf("merged %+v", m)
	}
	if m.Subs[0] != 5 || m.Phases[0].Received != 48 || m.Phases[0].ClientSent[4] != 2 {
		t.Errorf("merged subs %v phases %+v", m.Subs, m.Phases)
	}
}

func TestParseProc(t *testing.T) {
	status := "Name:\tpushwire\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nThreads:\t8\n"
	if kb, err := parseVmRSS([]byte(status)); err != nil || kb != 12345 {
		t.Errorf("parseVmRSS = %d, %v", kb, err)
	}
	if _, err := parseVmRSS([]byte("Name:\tx\n")); err == nil {
		t.Error("no VmRSS accepted")
	}
	stat := "4242 (my (odd) name) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3"
	if d, err := parseStatCPU([]byte(stat)); err != nil || d != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v", d, err)
	}
	if _, err := ReadRSS(os.Getpid()); err != nil {
		t.Errorf("ReadRSS(self): %v", err)
	}
}

// TestPublisherCounts runs the API publisher against a fake REST API that verifies every
// signature and refuses one request in four: accepted and error counts must match it.
func TestPublisherCounts(t *testing.T) {
	var n, bad int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := protocol.ParseAPIQuery(r.URL.RawQuery)
		body, _ := io.ReadAll(r.Body)
		if err != nil || !q.VerifyAPISignature("s", r.Method, r.URL.Path) || q.CheckBodyMD5(r.Method, body) != nil {
			bad++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		n++
		if n%4 == 0 {
			http.Error(w, "nope", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("{}"))
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	cfg := &Config{HTTPURL: srv.URL, URL: "ws://" + u.Host, AppID: "a", Key: "k", Secret: "s", Publishers: 1,
		Layout: LayoutOwn, Subscribers: 3, Prefix: "b", ChannelType: "public", Payload: 50, SharedEvery: 1}
	res := newPublisher(cfg).run(context.Background(), 0, 200, 200*time.Millisecond)
	if bad != 0 {
		t.Fatalf("%d requests with a bad signature", bad)
	}
	if res.Offered != int64(n) || res.Accepted+res.Errors != res.Offered || res.Errors != int64(n/4) {
		t.Errorf("offered %d accepted %d errors %d; server saw %d", res.Offered, res.Accepted, res.Errors, n)
	}
	var sum int64
	for ch, k := range res.PerChan {
		if ch < 1 || ch > 3 {
			t.Errorf("publish to channel %d", ch)
		}
		sum += k
	}
	if sum != res.Accepted {
		t.Errorf("per channel %v, accepted %d", res.PerChan, res.Accepted)
	}
}

func TestWriteTable(t *testing.T) {
	r := &Report{Label: "x", Cores: 2, Settings: Settings{Subscribers: 1, Layout: LayoutShared, Processes: 1},
		Memory: &MemoryResult{BeforeKB: 1, AfterKB: 2, PerConnBytes: 1024},
		Phases: []PhaseResult{{Phase: 0, Rate: 10, Published: 10, Expected: 10, Received: 10, DeliveredPct: 100, OK: true}}}
	r.Best = &r.Phases[0]
	var b bytes.Buffer
	WriteTable(&b, r)
	for _, want := range []string{"server", "1024 bytes per connection", "delivered %", "best at 100% delivery"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestMedianAndFormat(t *testing.T) {
	if got := Median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("Median odd = %v", got)
	}
	if got := Median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("Median even = %v", got)
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) not NaN")
	}
	for v, want := range map[float64]string{1234567: "1,234,567", 0.5: "0.50", 12.345: "12.3", 456.7: "457", -1000: "-1,000"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestWriteComparison(t *testing.T) {
	mk := func(label string, perConn float64) *Report {
		return &Report{Label: label, Scenario: "idle-memory", Memory: &MemoryResult{PerConnBytes: perConn, AfterKB: 1024}}
	}
	reports := []*Report{mk("soketi", 6000), mk("soketi", 7000), mk("soketi", 6500), mk("pushwire", 5000), mk("pushwire", 5200), mk("pushwire", 4800)}
	var b bytes.Buffer
	WriteComparison(&b, reports, "pushwire", "soketi")
	out := b.String()
	for _, want := range []string{"#### idle-memory (3 rounds)", "| RSS per idle connection (bytes) | 6,500 (6,000–7,000) | 5,000 (4,800–5,200) | 0.77× ✓ |"} {
		if !strings.Contains(out, want) {
			t.Errorf("comparison lacks %q:\n%s", want, out)
		}
	}
}

func TestOtherCPU(t *testing.T) {
	if tot, busy, err := parseMachineCPU([]byte("cpu  100 0 50 800 30 10 10 0 0 0\ncpu0 1 2 3\n")); err != nil || tot != 1000 || busy != 150 {
		t.Errorf("parseMachineCPU = %d %d %v", tot, busy, err)
	}
	now := time.Now()
	a := cpuSample{at: now}
	// 2 cores over 1 s: 200 jiffies, 100 busy = one core busy; ours used 0.4 s → others 60%.
	b := cpuSample{at: now.Add(time.Second), total: 200, busy: 100, ours: 400 * time.Millisecond}
	if got := otherCPUPct(a, b, 2); math.Abs(got-60) > 1e-9 {
		t.Errorf("otherCPUPct = %v, want 60", got)
	}
}

func TestSignedBatchRequest(t *testing.T) {
	now := time.Now()
	req, err := SignedBatchRequest(context.Background(), "http://127.0.0.1:1", "app-id", "app-key", "app-secret",
		[]string{"bench-1", "bench-2"}, "bench", []string{"pwl:1:0:0:", "pwl:1:0:1:"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != http.MethodPost || req.URL.Path != "/apps/app-id/batch_events" {
		t.Fatalf("%s %s", req.Method, req.URL.Path)
	}
	body, _ := io.ReadAll(req.Body)
	q, err := protocol.ParseAPIQuery(req.URL.RawQuery)
	if err != nil {
		t.Fatal(err)
	}
	if !q.VerifyAPISignature("app-secret", http.MethodPost, "/apps/app-id/batch_events") || q.CheckBodyMD5(http.MethodPost, body) != nil {
		t.Error("signature or body_md5 does not verify")
	}
	var b struct {
		Batch []map[string]string `json:"batch"`
	}
	if err := json.Unmarshal(body, &b); err != nil || len(b.Batch) != 2 || b.Batch[1]["channel"] != "bench-2" || b.Batch[1]["data"] != "pwl:1:0:1:" || b.Batch[0]["name"] != "bench" {
		t.Fatalf("body %s: %v", body, err)
	}
	if _, err := ParseArgs([]string{"--batch", "0"}, io.Discard); err == nil {
		t.Error("--batch 0 accepted")
	}
}
