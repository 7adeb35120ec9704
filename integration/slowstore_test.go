package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// stallProxy forwards TCP connections to a target and can stop moving bytes, in both
// directions, until resumed: a database that stops answering, without stopping the shared
// machine's Postgres.
type stallProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	gate    chan struct{} // closed while bytes flow
	held    int           // chunks waiting at the gate
	heldCh  chan struct{} // signalled when held grows
	conns   []net.Conn
	stopped bool
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, gate: make(chan struct{}), heldCh: make(chan struct{}, 1)}
	close(p.gate)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) addr() string { return p.ln.Addr().String() }

func (p *stallProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.stopped {
			p.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

// pipe copies src to dst, each chunk waiting at the gate.
func (p *stallProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			select {
			case <-gate:
			default:
				p.held++
				select {
				case p.heldCh <- struct{}{}:
				default:
				}
			}
			p.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pause stops every byte from now on until resume.
func (p *stallProxy) pause() {
	p.mu.Lock()
	p.gate = make(chan struct{})
	p.held = 0
	p.mu.Unlock()
}

func (p *stallProxy) resume() {
	p.mu.Lock()
	close(p.gate)
	p.mu.Unlock()
}

// waitHeld waits until at least one chunk is held at the gate: the server sent something to
// the stalled database.
func (p *stallProxy) waitHeld(t *testing.T) {
	t.Helper()
	deadline := time.After(frameTimeout)
	for {
		p.mu.Lock()
		n := p.held
		p.mu.Unlock()
		if n > 0 {
			return
		}
		select {
		case <-p.heldCh:
		case <-deadline:
			t.Fatal("the server sent nothing to the stalled database")
		}
	}
}

func (p *stallProxy) close() {
	p.mu.Lock()
	p.stopped = true
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
	conns := p.conns
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
}

// TestSlowStoreStallsOnlyItsChannels: with the history database stalled for 5 s (a TCP
// proxy in front of Postgres stops moving bytes), publishes to a channel without history are
// acknowledged and delivered in order while the history channel's publishes wait for their
// commits; once the database answers again, the history channel's publishes are
// acknowledged and delivered with the next serials, in order, nothing lost or repeated, and
// its stored history holds every message.
func TestSlowStoreStallsOnlyItsChannels(t *testing.T) {
	t.Parallel()
	const hist, live = "orders:stall", "prices:stall"
	dbURL, err := url.Parse(testkit.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newStallProxy(t, dbURL.Host)
	dbURL.Host = proxy.addr()
	cfg := fmt.Sprintf(`history: postgres
database_url: %q
apps:
  - id: %s
    key: %s
    secret: %s
    history_channels: ["orders:"]
`, dbURL.String(), testkit.AppID, testkit.AppKey, testkit.AppSecret)
	s := testkit.Start(t, testkit.Options{Port: -1, Config: cfg})

	c := connectV2(t, s, v2Options{})
	c.subscribeV2(t, hist, nil)
	c.subscribeV2(t, live, nil)
	publishN(t, s, hist, 3)
	for want := uint64(1); want <= 3; want++ {
		if f := c.nextMessage(t); f.Channel != hist || f.Serial != want {
			t.Fatalf("before the stall: %s, want %s serial %d", f.raw, hist, want)
		}
	}

	proxy.pause()
	stalledAt := time.Now()
	// Five history publishes at once, from five publishers: their HTTP answers wait for the
	// commit.
	const stalled = 5
	answers := make(chan string, stalled)
	for i := range stalled {
		go func() {
			body, _ := json.Marshal(map[string]any{"name": "tick", "channel": hist, "data": fmt.Sprintf("stalled %d", i)})
			status, resp, err := postEvent(s, body, 60*time.Second)
			answers <- fmt.Sprintf("%d %s %v", status, resp, err)
		}()
	}
	proxy.waitHeld(t) // the appends reached the (stalled) database

	// The channel without history is not held up: each publish is answered and delivered.
	for i := range 20 {
		publish(t, s, map[string]any{"name": "tick", "channel": live, "data": fmt.Sprint(i)})
		f := c.nextMessage(t)
		if f.Channel != live || f.dataString() != fmt.Sprint(i) || f.Serial != 0 {
			t.Fatalf("live message %d during the stall: %s", i, f.raw)
		}
	}
	select {
	case a := <-answers:
		t.Fatalf("a history publish was answered while its database was stalled: %s", a)
	default:
	}

	// The database stays stalled for 5 s in all (the fault's length, not an assertion):
	// longer than one statement's timeout, within the queued appends' patience.
	time.Sleep(time.Until(stalledAt.Add(5 * time.Second)))
	select {
	case a := <-answers:
		t.Fatalf("a history publish was answered while its database was stalled: %s", a)
	default:
	}
	proxy.resume()
	for range stalled {
		if a := <-answers; a != "200 {} <nil>" {
			t.Fatalf("history publish after the stall: %s", a)
		}
	}
	seen := map[string]bool{}
	for want := uint64(4); want < 4+stalled; want++ {
		f := c.nextMessage(t)
		if f.Channel != hist || f.Serial != want {
			t.Fatalf("after the stall: %s, want %s serial %d", f.raw, hist, want)
		}
		seen[f.dataString()] = true
	}
	if len(seen) != stalled {
		t.Fatalf("after the stall got %v, want %d distinct messages", seen, stalled)
	}
	status, body := apiGet(t, s, "/apps/"+testkit.AppID+"/channels/"+hist+"/history", url.Values{"limit": {"100"}, "direction": {"oldest_first"}})
	if status != http.StatusOK {
		t.Fatalf("history: HTTP %d %s", status, body)
	}
	var page struct {
		Items []struct {
			Serial uint64 `json:"serial"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("history %s: %v", body, err)
	}
	if len(page.Items) != 3+stalled {
		t.Fatalf("stored history has %d messages, want %d: %s", len(page.Items), 3+stalled, body)
	}
	for i, it := range page.Items {
		if it.Serial != uint64(i+1) {
			t.Fatalf("stored serial %d at %d: %s", it.Serial, i, body)
		}
	}
}

// postEvent sends one signed POST /events with its own deadline (the helpers' is shorter).
func postEvent(s *testkit.Server, body []byte, timeout time.Duration) (int, string, error) {
	path := "/apps/" + testkit.AppID + "/events"
	q := protocol.SignAPIRequest(testkit.AppKey, testkit.AppSecret, http.MethodPost, path, nil, body, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.HTTPURL()+path+"?"+q, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}
