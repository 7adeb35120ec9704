package sdkcompat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/internal/testkit"
)

// waitTimeout bounds every wait for a frame.
const waitTimeout = 5 * time.Second

// quiet is how long to listen for a frame that must not arrive.
const quiet = 300 * time.Millisecond

var socketIDRe = regexp.MustCompile(`^\d+\.\d+$`)

// frame is one server frame as a Pusher client sees it.
type frame struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	UserID  string          `json:"user_id,omitempty"`
	raw     []byte
}

// dataString decodes a double-encoded data value (a JSON string holding JSON).
func (f frame) dataString(t *testing.T) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(f.Data, &s); err != nil {
		t.Fatalf("%s: data is not a JSON string: %s", f.Event, f.raw)
	}
	return s
}

// dataObject decodes data into v, accepting an object or a JSON string holding one.
func (f frame) dataObject(t *testing.T, v any) {
	t.Helper()
	b := []byte(f.Data)
	var s string
	if json.Unmarshal(b, &s) == nil {
		b = []byte(s)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: cannot decode data %s: %v", f.Event, f.raw, err)
	}
}

// wsClient is a raw protocol-7 WebSocket client: a reader goroutine queues every frame.
type wsClient struct {
	t        *testing.T
	name     string
	conn     *websocket.Conn
	socketID string
	frames   chan frame
	done     chan struct{}
	pending  []frame // received but not yet expected (test goroutine only)

	mu       sync.Mutex
	closeErr error
}

// dial connects to the server like pusher-js does and reads connection_established.
func dial(t *testing.T, srv *testkit.Server, name string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, srv.WSURL(testkit.AppKey), nil)
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	conn.SetReadLimit(4 << 20)
	c := &wsClient{t: t, name: name, conn: conn, frames: make(chan frame, 256), done: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(c.close)

	f := c.next("pusher:connection_established", "")
	var est struct {
		SocketID        string `json:"socket_id"`
		ActivityTimeout int    `json:"activity_timeout"`
	}
	f.dataObject(t, &est)
	if !socketIDRe.MatchString(est.SocketID) || est.ActivityTimeout <= 0 {
		t.Fatalf("%s: bad connection_established: %s", name, f.raw)
	}
	c.socketID = est.SocketID
	return c
}

func (c *wsClient) readLoop() {
	defer close(c.done)
	for {
		_, b, err := c.conn.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.closeErr = err
			c.mu.Unlock()
			return
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			f = frame{Event: "<invalid JSON>"}
		}
		f.raw = b
		select {
		case c.frames <- f:
		default:
			c.mu.Lock()
			c.closeErr = errors.New("test client queue overflow")
			c.mu.Unlock()
			return
		}
	}
}

func (c *wsClient) close() {
	_ = c.conn.Close(websocket.StatusNormalClosure, "")
	select {
	case <-c.done:
	case <-time.After(waitTimeout):
		c.conn.CloseNow()
	}
}

// send writes one JSON frame.
func (c *wsClient) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
}

// expect returns the first frame matching pred within waitTimeout. Frames that do not
// match stay queued, in order, for later expectations.
func (c *wsClient) expect(what string, pred func(frame) bool) frame {
	c.t.Helper()
	if f, ok := c.takePending(pred); ok {
		return f
	}
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case f := <-c.frames:
			if pred(f) {
				return f
			}
			c.pending = append(c.pending, f)
		case <-c.done:
			// Drain what was queued before the close.
			select {
			case f := <-c.frames:
				if pred(f) {
					return f
				}
				c.pending = append(c.pending, f)
				continue
			default:
			}
			c.t.Fatalf("%s: connection closed (%v) while waiting for %s; other frames: %s", c.name, c.err(), what, c.pendingText())
		case <-timer.C:
			c.t.Fatalf("%s: timed out after %s waiting for %s; other frames: %s", c.name, waitTimeout, what, c.pendingText())
		}
	}
}

func (c *wsClient) takePending(pred func(frame) bool) (frame, bool) {
	for i, f := range c.pending {
		if pred(f) {
			c.pending = append(c.pending[:i:i], c.pending[i+1:]...)
			return f, true
		}
	}
	return frame{}, false
}

func (c *wsClient) pendingText() string {
	var b strings.Builder
	for _, f := range c.pending {
		b.Write(f.raw)
		b.WriteByte('\n')
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// next returns the next frame with this event (and channel, when not empty).
func (c *wsClient) next(event, channel string) frame {
	c.t.Helper()
	return c.expect(fmt.Sprintf("%s on %q", event, channel), match(event, channel))
}

func match(event, channel string) func(frame) bool {
	return func(f frame) bool {
		return f.Event == event && (channel == "" || f.Channel == channel)
	}
}

// none fails if a frame with this event and channel is queued or arrives within quiet.
func (c *wsClient) none(event, channel string) {
	c.t.Helper()
	if f, ok := c.takePending(match(event, channel)); ok {
		c.t.Fatalf("%s: unexpected frame %s", c.name, f.raw)
	}
	timer := time.NewTimer(quiet)
	defer timer.Stop()
	for {
		select {
		case f := <-c.frames:
			if match(event, channel)(f) {
				c.t.Fatalf("%s: unexpected frame %s", c.name, f.raw)
			}
			c.pending = append(c.pending, f)
		case <-timer.C:
			return
		}
	}
}

// subscribe sends pusher:subscribe and waits for the acknowledgement.
func (c *wsClient) subscribe(channel, auth, channelData string) frame {
	c.t.Helper()
	c.sendSubscribe(channel, auth, channelData)
	return c.next("pusher_internal:subscription_succeeded", channel)
}

func (c *wsClient) sendSubscribe(channel, auth, channelData string) {
	c.t.Helper()
	d := map[string]string{"channel": channel, "auth": auth}
	if channelData != "" {
		d["channel_data"] = channelData
	}
	c.send(map[string]any{"event": "pusher:subscribe", "data": d})
}

// waitClosed waits for the server to close the connection and returns its close status.
func (c *wsClient) waitClosed() websocket.StatusCode {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(waitTimeout):
		c.t.Fatalf("%s: connection still open after %s", c.name, waitTimeout)
	}
	return websocket.CloseStatus(c.err())
}

func (c *wsClient) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}
