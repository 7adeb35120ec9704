package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/pushwire/pushwire/channels"
)

// viewer is one browser watching an app's stream.
type viewer struct {
	app     string
	channel string // substring filters; "" matches all
	event   string
	queue   chan []byte
	dropped atomic.Int64
}

// matches applies the viewer's filters to an activity of its app.
func (v *viewer) matches(a *channels.Activity) bool {
	return (v.channel == "" || strings.Contains(a.Channel, v.channel)) &&
		(v.event == "" || strings.Contains(a.Event, v.event) || strings.Contains(string(a.Kind), v.event))
}

// Watching implements channels.Tap: one atomic load while nobody watches any app.
func (c *Console) Watching(appID string) bool {
	if c.total.Load() == 0 {
		return false
	}
	n := c.watching[appID]
	return n != nil && n.Load() > 0
}

// activityJSON is an Activity as the page receives it.
type activityJSON struct {
	TimeMs   int64  `json:"t"`
	Kind     string `json:"kind"`
	Channel  string `json:"channel,omitempty"`
	Event    string `json:"event,omitempty"`
	SocketID string `json:"socket_id,omitempty"`
	UserID   string `json:"user_id,omitempty"`
	Data     string `json:"data,omitempty"`
	Code     int    `json:"code,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// Record implements channels.Tap: it queues the activity for every viewer of its app whose
// filters match, without blocking; a full queue drops it and counts the drop.
func (c *Console) Record(a channels.Activity) {
	var b []byte
	c.mu.RLock()
	defer c.mu.RUnlock()
	for v := range c.viewers {
		if v.app != a.AppID || !v.matches(&a) {
			continue
		}
		if b == nil {
			b, _ = json.Marshal(activityJSON{TimeMs: c.now().UnixMilli(), Kind: string(a.Kind), Channel: a.Channel,
				Event: a.Event, SocketID: a.SocketID, UserID: a.UserID, Data: truncate(a.Data, maxData),
				Code: a.Code, Detail: truncate(a.Detail, maxData)})
		}
		select {
		case v.queue <- b:
		default:
			v.dropped.Add(1)
		}
	}
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func (c *Console) addViewer(v *viewer) {
	c.mu.Lock()
	c.viewers[v] = struct{}{}
	c.mu.Unlock()
	c.watching[v.app].Add(1)
	c.total.Add(1)
}

func (c *Console) removeViewer(v *viewer) {
	c.total.Add(-1)
	c.watching[v.app].Add(-1)
	c.mu.Lock()
	delete(c.viewers, v)
	c.mu.Unlock()
}

// Viewers returns how many streams are open now.
func (c *Console) Viewers() int { return int(c.total.Load()) }

// stream answers GET api/stream?channel=&event= with Server-Sent Events: "snapshot" events
// (the app's counts) every SnapshotInterval, "activity" events as they happen, and
// "dropped" when activities were lost because this viewer fell behind.
func (c *Console) stream(w http.ResponseWriter, r *http.Request, appID string) {
	select {
	case <-c.done:
		writeJSON(w, http.StatusServiceUnavailable, errBody{"Shutting down"})
		return
	default:
	}
	rc := http.NewResponseController(w)
	q := r.URL.Query()
	v := &viewer{app: appID, channel: q.Get("channel"), event: q.Get("event"), queue: make(chan []byte, c.opts.ViewerBuffer)}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	c.addViewer(v) // before the answer starts, so what follows it is seen
	defer c.removeViewer(v)
	w.WriteHeader(http.StatusOK)

	send := func(event string, data []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return false
		}
		return true
	}
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		return rc.Flush() == nil
	}
	if !send("snapshot", c.snapshot(appID)) || !flush() {
		return
	}
	tick := time.NewTicker(c.opts.SnapshotInterval)
	defer tick.Stop()
	var reported int64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.done:
			return
		case b := <-v.queue:
			ok := send("activity", b)
			for n := len(v.queue); ok && n > 0; n-- { // what piled up goes in one flush
				ok = send("activity", <-v.queue)
			}
			if d := v.dropped.Load(); ok && d != reported {
				reported = d
				ok = send("dropped", fmt.Appendf(nil, `{"total":%d}`, d))
			}
			if !ok || !flush() {
				return
			}
		case <-tick.C:
			if !send("snapshot", c.snapshot(appID)) || !flush() {
				return
			}
		}
	}
}
