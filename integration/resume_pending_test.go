package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// Resume before subscribe (issue 15 §1): sockudo_flutter sends sockudo:resume right after
// connection_established, before its subscribes (which await authorization); sockudo-js
// does the same for private and presence channels. These tests run real server processes
// with clients that keep their recovery positions exactly as both SDKs do: every frame with
// a channel and a serial (the subscription ack included) overwrites the channel's position,
// resume_success's recovered positions overwrite it too, resume_failed drops it.

// TestResumePending runs the resume-before-subscribe groups with the memory history.
func TestResumePending(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1})
	runResumePendingGroups(t, s, "mem")
}

// TestResumePendingPostgres runs them with the Postgres history.
func TestResumePendingPostgres(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--history", "postgres", "--database-url", testkit.PostgresURL(t)}})
	runResumePendingGroups(t, s, "pg")
}

func runResumePendingGroups(t *testing.T, s *testkit.Server, tag string) {
	t.Run("BothOrders", func(t *testing.T) { testResumeBothOrders(t, s, tag) })
	t.Run("CutsMidStream", func(t *testing.T) { testResumeCutsMidStream(t, s, tag) })
}

var debugResume = os.Getenv("PUSHWIRE_DEBUG_RESUME") != ""

// sdkClient is a V2 connection plus the recovery bookkeeping of sockudo-js and
// sockudo_flutter, and the serials it received on its channel (duplicates included). It
// runs on any goroutine: a failure panics with sdkFailure, which runSDK turns into an error.
type sdkClient struct {
	channel string
	c       *client
	pos     protocol.Position
	hasPos  bool
	serials []uint64
	lastEnd uint64   // the serial of the "end" message, once received
	sources []string // source of each recovery in a resume_success ("hot", "cold")
	log     func(string)
}

type sdkFailure struct{ msg string }

func (r *sdkClient) failf(format string, args ...any) {
	panic(sdkFailure{fmt.Sprintf("%s: ", r.channel) + fmt.Sprintf(format, args...)})
}

// runSDK runs f and returns the failure of an sdkClient it used.
func runSDK(f func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			sf, ok := p.(sdkFailure)
			if !ok {
				panic(p)
			}
			err = errors.New(sf.msg)
		}
	}()
	f()
	return nil
}

// mustSDK runs f on the test's goroutine, failing the test on an sdkClient failure.
func mustSDK(t testing.TB, f func()) {
	t.Helper()
	if err := runSDK(f); err != nil {
		t.Fatal(err)
	}
}

// connect opens a connection to s and sends the two frames in the given order: resume
// first (what the SDKs do for channels whose subscribe awaits authorization) or subscribe
// first. Without a position it only subscribes.
func (r *sdkClient) connect(s *testkit.Server, resumeFirst bool) {
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, v2URL(s, testkit.AppKey, v2Options{}), nil)
	if err != nil {
		r.failf("dial: %v", err)
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	ws.SetReadLimit(4 << 20)
	r.c = &client{ws: ws, msgs: make(chan message, 4096), done: make(chan struct{}), key: testkit.AppKey, secret: testkit.AppSecret}
	go r.c.readLoop()
	m, ok := r.c.recv(frameTimeout)
	hs := v2HandshakeRE.FindStringSubmatch(string(m.data))
	if !ok || hs == nil {
		r.failf("handshake %q (%v)", m.data, r.c.err)
	}
	r.c.socketID = hs[1]
	auth := ""
	if strings.HasPrefix(r.channel, "private-") {
		auth = r.c.channelAuth(r.channel, "")
	}
	// The frames exactly as sockudo-js sends them (JSON.stringify of {event, data}).
	sub := fmt.Sprintf(`{"event":"sockudo:subscribe","data":{"auth":%q,"channel":%q}}`, auth, r.channel)
	pos, _ := json.Marshal(map[string]any{"channel_positions": map[string]protocol.Position{r.channel: r.pos}})
	resume, _ := json.Marshal(map[string]any{"event": "sockudo:resume", "data": string(pos)})
	switch {
	case !r.hasPos:
		r.write(sub)
	case resumeFirst:
		r.write(string(resume))
		r.write(sub)
	default:
		r.write(sub)
		r.write(string(resume))
	}
}

func (r *sdkClient) write(frame string) {
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	if err := r.c.ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		r.failf("write %s: %v", frame, err)
	}
}

// step reads one frame and applies it as the SDKs do. It returns the frame's event, or ""
// when the connection ended.
func (r *sdkClient) step() string {
	m, ok := r.c.recv(frameTimeout)
	if !ok {
		select {
		case <-r.c.done:
			return ""
		default:
			r.failf("no frame within %s (have %d serials)", frameTimeout, len(r.serials))
		}
	}
	if debugResume && r.log != nil {
		r.log("<- " + string(m.data))
	}
	var f v2Frame
	if err := json.Unmarshal(m.data, &f); err != nil {
		r.failf("frame %q: %v", m.data, err)
	}
	if f.Channel != "" && f.Serial != 0 {
		r.pos, r.hasPos = protocol.Position{StreamID: f.StreamID, Serial: f.Serial, LastMessageID: f.MessageID}, true
	}
	switch f.Event {
	case "tick", "end":
		if f.Channel != r.channel {
			r.failf("message of another channel: %s", m.data)
		}
		r.serials = append(r.serials, f.Serial)
		if f.Event == "end" {
			r.lastEnd = f.Serial
		}
	case "sockudo_internal:subscription_succeeded", "sockudo:pong":
	case "sockudo:resume_success":
		var o struct {
			Recovered []struct {
				Channel  string
				Source   string
				Position *protocol.Position
			}
			Failed []json.RawMessage
		}
		if err := json.Unmarshal([]byte(f.dataString()), &o); err != nil || len(o.Failed) != 0 {
			r.failf("resume_success %s", m.data)
		}
		for _, rec := range o.Recovered {
			if rec.Channel == r.channel && rec.Position != nil {
				r.pos = *rec.Position
			}
			if rec.Channel == r.channel {
				r.sources = append(r.sources, rec.Source)
			}
		}
	case "sockudo:resume_failed":
		r.failf("resume failed: %s", m.data)
	case "sockudo:error":
		if !strings.Contains(f.dataString(), `"code":4200`) { // the server shutting down
			r.failf("error frame %s", m.data)
		}
	default:
		r.failf("unexpected frame %s", m.data)
	}
	return f.Event
}

// awaitAck reads frames until the subscription's acknowledgement.
func (r *sdkClient) awaitAck() {
	for {
		switch r.step() {
		case "sockudo_internal:subscription_succeeded":
			return
		case "":
			r.failf("connection ended before the ack: %v", r.c.err)
		}
	}
}

// readMessages reads until n more messages arrived (or the connection ended: false).
func (r *sdkClient) readMessages(n int) bool {
	for want := len(r.serials) + n; len(r.serials) < want; {
		if r.step() == "" {
			return false
		}
	}
	return true
}

// readUntilEnd reads until the "end" message.
func (r *sdkClient) readUntilEnd() {
	for r.lastEnd == 0 {
		if r.step() == "" {
			r.failf("connection ended before the end message: %v", r.c.err)
		}
	}
}

// quiet proves nothing more is queued: a ping's pong comes next.
func (r *sdkClient) quiet() {
	r.write(`{"event":"sockudo:ping","data":{}}`)
	if ev := r.step(); ev != "sockudo:pong" {
		r.failf("after the end: %s", ev)
	}
}

// cut drops the connection the way a network does: no close handshake.
func (r *sdkClient) cut() { _ = r.c.ws.CloseNow() }

// check requires serials from..lastEnd, each once, in order.
func (r *sdkClient) check(from uint64) {
	if r.lastEnd == 0 {
		r.failf("no end message")
	}
	want := from
	for i, s := range r.serials {
		if s != want {
			r.failf("serial #%d is %d, want %d (duplicate or gap); received %v", i, s, want, r.serials)
		}
		want++
	}
	if want != r.lastEnd+1 {
		r.failf("received up to %d, want %d", want-1, r.lastEnd)
	}
}

// tryPublish publishes one event on s and reports an error instead of failing the test
// (the publisher keeps going while servers restart).
func tryPublish(s *testkit.Server, channel, name, data string) error {
	body, _ := json.Marshal(map[string]any{"name": name, "channel": channel, "data": data})
	path := "/apps/" + testkit.AppID + "/events"
	q := protocol.SignAPIRequest(testkit.AppKey, testkit.AppSecret, http.MethodPost, path, nil, body, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.HTTPURL()+path+"?"+q, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// publisher publishes "tick" messages on channel to the current server (swappable) every
// interval until stopped, retrying each until it is accepted; stop publishes "end".
type publisher struct {
	srv     atomic.Pointer[testkit.Server]
	channel string
	stopped chan struct{}
	once    sync.Once
	done    chan struct{}
	sent    atomic.Int64
	err     atomic.Value
}

func startPublisher(s *testkit.Server, channel string, interval time.Duration) *publisher {
	p := &publisher{channel: channel, stopped: make(chan struct{}), done: make(chan struct{})}
	p.srv.Store(s)
	go func() {
		defer close(p.done)
		deadline := time.Now().Add(time.Minute)
		for i := 0; ; i++ {
			select {
			case <-p.stopped:
				return
			default:
			}
			for tryPublish(p.srv.Load(), channel, "tick", fmt.Sprint(i)) != nil {
				if time.Now().After(deadline) {
					p.err.Store(fmt.Errorf("publisher: no server accepted message %d for a minute", i))
					return
				}
				time.Sleep(20 * time.Millisecond) // a server is restarting
			}
			p.sent.Add(1)
			time.Sleep(interval)
		}
	}()
	return p
}

// waitSent waits until n messages were published.
func (p *publisher) waitSent(t testing.TB, n int64) {
	t.Helper()
	testkit.WaitFor(t, time.Minute, fmt.Sprintf("%d messages published", n), func() bool { return p.sent.Load() >= n })
}

// stop ends the publisher and publishes the "end" message.
func (p *publisher) stop(t testing.TB) {
	t.Helper()
	if err := p.finish(); err != nil {
		t.Fatal(err)
	}
}

// finish is stop for any goroutine: it returns the error instead.
func (p *publisher) finish() error {
	p.once.Do(func() { close(p.stopped) })
	<-p.done
	if err, _ := p.err.Load().(error); err != nil {
		return err
	}
	if err := tryPublish(p.srv.Load(), p.channel, "end", "end"); err != nil {
		return fmt.Errorf("end message: %v", err)
	}
	return nil
}

// abandon stops the publisher if the test ended early.
func (p *publisher) abandon() {
	p.once.Do(func() { close(p.stopped) })
	<-p.done
}

// testResumeBothOrders: a client that held serial 3 comes back after 7 more messages, with
// the resume before or after the subscribe, on a public and on a private channel; then
// live messages follow. It receives 4..end once each, in order, and nothing more.
func testResumeBothOrders(t *testing.T, s *testkit.Server, tag string) {
	for _, base := range []string{"rp-orders-" + tag, "private-rp-orders-" + tag} {
		for _, resumeFirst := range []bool{true, false} {
			ch := fmt.Sprintf("%s-%v", base, resumeFirst)
			t.Run(ch, func(t *testing.T) {
				r := &sdkClient{channel: ch, log: func(s string) { t.Log(s) }}
				defer func() { r.cut() }()
				mustSDK(t, func() {
					r.connect(s, false)
					r.awaitAck()
					publishN(t, s, ch, 3)
					r.readMessages(3)
					r.cut()
					publishN(t, s, ch, 7)
					r.serials = nil
					r.connect(s, resumeFirst)
					r.readMessages(7)
					publishN(t, s, ch, 2)
					if err := tryPublish(s, ch, "end", "end"); err != nil {
						t.Fatal(err)
					}
					r.readUntilEnd()
					r.check(4)
					r.quiet()
				})
			})
		}
	}
}

// testResumeCutsMidStream: 8 clients (half resume first, half subscribe first) on one
// private channel while a publisher keeps publishing; each client's socket is cut 4 times
// at random points (resume-first clients also right after the ack) and it reconnects at
// once with its stored position. Every client receives every serial once, in order.
func testResumeCutsMidStream(t *testing.T, s *testkit.Server, tag string) {
	ch := "private-rp-cuts-" + tag
	// The channel's stream exists before anyone subscribes.
	if err := tryPublish(s, ch, "tick", "first"); err != nil {
		t.Fatal(err)
	}
	const n = 8
	clients := make([]*sdkClient, n)
	for i := range clients {
		clients[i] = &sdkClient{channel: ch}
		mustSDK(t, func() { clients[i].connect(s, false); clients[i].awaitAck() })
		defer clients[i].cut()
	}
	p := startPublisher(s, ch, 3*time.Millisecond)
	defer p.abandon()
	errs := make(chan error, n)
	for i, r := range clients {
		resumeFirst := i%2 == 0
		go func() {
			errs <- runSDK(func() {
				rng := rand.New(rand.NewPCG(uint64(i), 15))
				for cut := range 4 {
					if resumeFirst && cut == 2 {
						r.awaitAck() // cut right after the ack, which carries the head
					} else if !r.readMessages(1 + rng.IntN(40)) {
						r.failf("connection ended")
					}
					r.cut()
					time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond) // away while messages flow
					r.connect(s, resumeFirst)
				}
				r.readUntilEnd()
			})
		}()
	}
	p.waitSent(t, 400)
	p.stop(t)
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	for i, r := range clients {
		if err := runSDK(func() { r.check(2) }); err != nil {
			t.Errorf("client %d (resume first: %v): %v", i, i%2 == 0, err)
		}
		// A cut can come before the resume_success of the previous reconnect arrives; the
		// last one is always read. (Without recovery each reconnect would leave a gap.)
		if len(r.sources) == 0 {
			t.Errorf("client %d: no resume_success", i)
		}
	}
}

// TestResumePendingExpiry: a resume naming a channel that is never subscribed gets
// resume_failed {continuity_unverifiable, channel_not_subscribed} when the window ends
// (1s here), then a resume_success listing it; the connection carries on.
func TestResumePendingExpiry(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--resume-window=1s"}})
	const ch = "rp-expiry"
	publishN(t, s, ch, 2)
	c := connectV2(t, s, v2Options{})
	c.sendResume(t, map[string]protocol.Position{ch: {StreamID: protocol.NewUUID(), Serial: 1}})
	f := c.expectV2(t, "sockudo:resume_failed", ch)
	if !strings.Contains(f.dataString(), `"channel":"rp-expiry","code":"continuity_unverifiable","reason":"channel_not_subscribed"`) {
		t.Fatalf("resume_failed %s", f.raw)
	}
	done := c.expectV2(t, "sockudo:resume_success", "")
	if !strings.Contains(done.dataString(), `"recovered":[],"failed":[{"channel":"rp-expiry"`) {
		t.Fatalf("resume_success %s", done.raw)
	}
	c.subscribeV2(t, ch, nil)
	c.expectQuiet(t)
}

// TestResumePendingAfterRestart: 6 clients on a Postgres server, a publisher publishing
// all along; half the clients lose their network first (and miss messages only the old
// process stored), then the server goes away (graceful shutdown); a new process starts on
// the same port, and the clients reconnect and resume BEFORE subscribing, as
// sockudo_flutter does. Each receives every serial once, in order; the first half's gap
// comes from Postgres (the new process's hot buffer starts empty).
func TestResumePendingAfterRestart(t *testing.T) {
	t.Parallel()
	const ch = "private-rp-restart"
	args := []string{"--history", "postgres", "--database-url", testkit.PostgresURL(t)}
	s1 := testkit.Start(t, testkit.Options{Port: -1, Args: args})
	if err := tryPublish(s1, ch, "tick", "first"); err != nil {
		t.Fatal(err)
	}
	clients := make([]*sdkClient, 6)
	for i := range clients {
		clients[i] = &sdkClient{channel: ch}
		mustSDK(t, func() { clients[i].connect(s1, true); clients[i].awaitAck() })
		defer clients[i].cut()
	}
	p := startPublisher(s1, ch, 3*time.Millisecond)
	defer p.abandon()
	mustSDK(t, func() {
		// Each client reads a little; the even ones lose their network then, and miss
		// messages the old process stores; then the server goes away under everyone.
		for i, r := range clients {
			r.readMessages(20)
			if i%2 == 0 {
				r.cut()
			}
		}
		p.waitSent(t, p.sent.Load()+30)
		s1.Stop()
		for i, r := range clients {
			for i%2 == 1 && r.step() != "" { // what was in flight, then the close
			}
		}
	})
	s2 := testkit.Start(t, testkit.Options{Port: s1.Port, Args: args})
	p.srv.Store(s2)
	start := p.sent.Load()
	mustSDK(t, func() {
		for _, r := range clients {
			r.connect(s2, true)
		}
	})
	p.waitSent(t, start+100)
	p.stop(t)
	mustSDK(t, func() {
		for i, r := range clients {
			r.readUntilEnd()
			r.check(2)
			if i%2 == 0 && fmt.Sprint(r.sources) != "[cold]" {
				t.Errorf("client %d: recoveries %v, want one from Postgres", i, r.sources)
			}
		}
	})
}
