// Package integration runs end-to-end tests against the real pushwire binary (built and
// started by internal/testkit) with a raw WebSocket client, asserting the exact frames of the
// Pusher Channels protocol 7 and the signed HTTP API that feeds it.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// frameTimeout bounds every wait for one frame. Generous: the server runs with -race.
const frameTimeout = 5 * time.Second

// handshakeRE matches the V1 connection_established frame and captures the socket id.
var handshakeRE = regexp.MustCompile(`^\{"event":"pusher:connection_established","data":"\{\\"socket_id\\":\\"(\d+\.\d+)\\",\\"activity_timeout\\":(\d+)\}"\}$`)

// message is one WebSocket message received from the server.
type message struct {
	typ  websocket.MessageType
	data []byte
}

// client is a raw WebSocket client. A background goroutine reads every message into a
// channel, so native pings get their pongs and close handshakes complete while a test waits.
type client struct {
	ws       *websocket.Conn
	msgs     chan message
	done     chan struct{} // closed when the read loop ended; err is then set
	err      error
	socketID string
	// key and secret sign this client's subscriptions and sign-ins (default: testkit's app).
	key, secret string
}

// dialOptions tune dial.
type dialOptions struct {
	header http.Header
	// noReader leaves reading to the caller (for a client that must stop reading).
	noReader bool
	// httpClient replaces the default HTTP client of the handshake.
	httpClient *http.Client
}

// dial opens a WebSocket to url without reading the handshake.
func dial(t testing.TB, url string, o dialOptions) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: o.header, HTTPClient: o.httpClient})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	ws.SetReadLimit(4 << 20)
	c := &client{ws: ws, msgs: make(chan message, 4096), done: make(chan struct{}), key: testkit.AppKey, secret: testkit.AppSecret}
	t.Cleanup(func() { _ = ws.CloseNow() })
	if !o.noReader {
		go c.readLoop()
	}
	return c
}

func (c *client) readLoop() {
	defer close(c.done)
	for {
		typ, b, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		c.msgs <- message{typ: typ, data: b}
	}
}

// connect dials app-key on s, reads connection_established and records the socket id.
func connect(t testing.TB, s *testkit.Server) *client {
	t.Helper()
	return connectKey(t, s, testkit.AppKey, 120)
}

// connectKey dials an app key and expects a handshake announcing activityTimeout seconds.
func connectKey(t testing.TB, s *testkit.Server, key string, activityTimeout int) *client {
	t.Helper()
	c := dial(t, s.WSURL(key), dialOptions{})
	c.expectHandshake(t, activityTimeout)
	return c
}

// connectApp dials another app and signs with its key and secret.
func connectApp(t testing.TB, s *testkit.Server, key, secret string) *client {
	t.Helper()
	c := connectKey(t, s, key, 120)
	c.key, c.secret = key, secret
	return c
}

// expectHandshake reads connection_established, checks its exact shape and keeps the socket id.
func (c *client) expectHandshake(t testing.TB, activityTimeout int) {
	t.Helper()
	got := c.next(t)
	m := handshakeRE.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("handshake frame\n got: %s\nwant: %s", got, `{"event":"pusher:connection_established","data":"{\"socket_id\":\"N.N\",\"activity_timeout\":N}"}`)
	}
	if m[2] != fmt.Sprint(activityTimeout) {
		t.Fatalf("handshake activity_timeout = %s, want %d in %s", m[2], activityTimeout, got)
	}
	c.socketID = m[1]
}

// recv returns the next message, or ok=false when the connection ended or timeout passed.
func (c *client) recv(timeout time.Duration) (message, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case m := <-c.msgs:
		return m, true
	case <-c.done:
		// Messages read before the end are still in the channel.
		select {
		case m := <-c.msgs:
			return m, true
		default:
			return message{}, false
		}
	case <-timer.C:
		return message{}, false
	}
}

// next returns the next text frame, failing the test on a timeout, a close or a binary frame.
func (c *client) next(t testing.TB) string {
	t.Helper()
	m, ok := c.recv(frameTimeout)
	if !ok {
		select {
		case <-c.done:
			t.Fatalf("connection ended while waiting for a frame: %v", c.err)
		default:
			t.Fatalf("no frame within %s", frameTimeout)
		}
	}
	if m.typ != websocket.MessageText {
		t.Fatalf("got a %v message, want text: %q", m.typ, m.data)
	}
	return string(m.data)
}

// expect reads the next frame and requires it to be exactly want.
func (c *client) expect(t testing.TB, want string) {
	t.Helper()
	if got := c.next(t); got != want {
		t.Fatalf("frame\n got: %s\nwant: %s", got, want)
	}
}

// inFrame is a server frame decoded for structural checks.
type inFrame struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	UserID  string          `json:"user_id"`
}

// expectEvent reads the next frame and requires it to be event, returning it decoded.
func (c *client) expectEvent(t testing.TB, event string) inFrame {
	t.Helper()
	got := c.next(t)
	var f inFrame
	if err := json.Unmarshal([]byte(got), &f); err != nil {
		t.Fatalf("frame is not a JSON object: %v: %s", err, got)
	}
	if f.Event != event {
		t.Fatalf("frame\n got: %s\nwant event %s", got, event)
	}
	return f
}

// errorData is the data object of a pusher:error frame.
type errorData struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// expectError reads the next frame and requires a pusher:error with exactly the keys event and
// data, data being an object with exactly code (== code) and a non-empty message.
func (c *client) expectError(t testing.TB, code int) string {
	t.Helper()
	got := c.next(t)
	var f struct {
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	var d errorData
	if err := strictUnmarshal([]byte(got), &f); err != nil || f.Event != "pusher:error" || strictUnmarshal(f.Data, &d) != nil || d.Code != code || d.Message == "" {
		t.Fatalf("frame\n got: %s\nwant: {\"event\":\"pusher:error\",\"data\":{\"code\":%d,\"message\":\"...\"}}", got, code)
	}
	return d.Message
}

// expectSubscriptionError reads a pusher:subscription_error for channel with the pusher-js
// shape data {"type","error","status",...} and checks its type and status.
func (c *client) expectSubscriptionError(t testing.TB, channel, typ string, status int) {
	t.Helper()
	f := c.expectEvent(t, "pusher:subscription_error")
	var d struct {
		Type   string `json:"type"`
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	if f.Channel != channel || json.Unmarshal(f.Data, &d) != nil || d.Type != typ || d.Status != status || d.Error == "" {
		t.Fatalf("subscription_error = {channel:%q data:%s}, want channel %q, type %q, status %d", f.Channel, f.Data, channel, typ, status)
	}
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

// expectClose requires the connection to end with a close frame of code, after no other frame.
func (c *client) expectClose(t testing.TB, code websocket.StatusCode) {
	t.Helper()
	if m, ok := c.recv(frameTimeout); ok {
		t.Fatalf("got frame %q, want close %d", m.data, code)
	}
	select {
	case <-c.done:
	default:
		t.Fatalf("connection still open after %s, want close %d", frameTimeout, code)
	}
	if got := websocket.CloseStatus(c.err); got != code {
		t.Fatalf("close status %d (%v), want %d", got, c.err, code)
	}
}

// expectRefused requires an error frame with code followed by a close with the same code.
func (c *client) expectRefused(t testing.TB, code int) {
	t.Helper()
	c.expectError(t, code)
	c.expectClose(t, websocket.StatusCode(code))
}

// send writes one text frame.
func (c *client) send(t testing.TB, frame string) {
	t.Helper()
	c.write(t, websocket.MessageText, []byte(frame))
}

func (c *client) write(t testing.TB, typ websocket.MessageType, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, typ, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// sendEvent writes {"event":event,"data":data} (and channel when not empty) as JSON.
func (c *client) sendEvent(t testing.TB, event, channel string, data any) {
	t.Helper()
	f := map[string]any{"event": event, "data": data}
	if channel != "" {
		f["channel"] = channel
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, string(b))
}

// ping sends pusher:ping and requires pusher:pong as the very next frame. Because the server
// answers in order, it also proves nothing else was queued for this client before the pong.
func (c *client) ping(t testing.TB) {
	t.Helper()
	c.send(t, `{"event":"pusher:ping","data":{}}`)
	c.expect(t, `{"event":"pusher:pong"}`)
}

// close closes the connection normally.
func (c *client) close() {
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	go func() {
		<-ctx.Done()
		_ = c.ws.CloseNow()
	}()
	_ = c.ws.Close(websocket.StatusNormalClosure, "")
}

// channelAuth signs a private, encrypted or presence subscription for this socket.
func (c *client) channelAuth(channel, channelData string) string {
	presence := strings.HasPrefix(channel, "presence-")
	return protocol.AuthToken(c.key, c.secret, protocol.ChannelStringToSign(c.socketID, channel, channelData, presence))
}

// subscribeFrame builds a pusher:subscribe frame; channelData is omitted when empty.
func subscribeFrame(channel, auth, channelData string) string {
	d := map[string]string{"channel": channel, "auth": auth}
	if channelData != "" {
		d["channel_data"] = channelData
	}
	b, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": d})
	return string(b)
}

// subscribe joins a public channel (auth "" as pusher-js sends) and expects the exact ack.
func (c *client) subscribe(t testing.TB, channel string) {
	t.Helper()
	c.send(t, subscribeFrame(channel, "", ""))
	c.expect(t, ackFrame(channel, "{}"))
}

// subscribePrivate joins a private or encrypted channel with a valid signature.
func (c *client) subscribePrivate(t testing.TB, channel string) {
	t.Helper()
	c.send(t, subscribeFrame(channel, c.channelAuth(channel, ""), ""))
	c.expect(t, ackFrame(channel, "{}"))
}

// subscribePresence sends a signed presence subscription; the caller checks the frames.
func (c *client) subscribePresence(t testing.TB, channel, channelData string) {
	t.Helper()
	c.send(t, subscribeFrame(channel, c.channelAuth(channel, channelData), channelData))
}

// signIn sends a signed pusher:signin and expects the exact signin_success.
func (c *client) signIn(t testing.TB, userData string) {
	t.Helper()
	auth := protocol.AuthToken(c.key, c.secret, protocol.UserStringToSign(c.socketID, userData))
	c.sendEvent(t, "pusher:signin", "", map[string]string{"auth": auth, "user_data": userData})
	c.expect(t, `{"event":"pusher:signin_success","data":{"user_data":`+jsonString(userData)+`}}`)
}

// jsonString encodes s as a JSON string without HTML escaping, as the server writes it.
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// ackFrame is the exact subscription_succeeded frame with a double-encoded data payload.
func ackFrame(channel, data string) string {
	return `{"event":"pusher_internal:subscription_succeeded","channel":` + jsonString(channel) + `,"data":` + jsonString(data) + `}`
}

// eventFrame is the exact frame of an HTTP-published event whose data is the string data.
func eventFrame(event, channel, data string) string {
	return `{"event":` + jsonString(event) + `,"channel":` + jsonString(channel) + `,"data":` + jsonString(data) + `}`
}

// apiPost sends a signed POST to the REST API and returns the status and body.
func apiPost(t testing.TB, s *testkit.Server, path string, body []byte) (int, string) {
	t.Helper()
	q := protocol.SignAPIRequest(testkit.AppKey, testkit.AppSecret, http.MethodPost, path, nil, body, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.HTTPURL()+path+"?"+q, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// apiGet sends a signed GET to the REST API and returns the status and body.
func apiGet(t testing.TB, s *testkit.Server, path string, params url.Values) (int, string) {
	t.Helper()
	return apiBodyless(t, s, http.MethodGet, path, params)
}

// apiBodyless sends a signed request without a body (GET, DELETE) and returns the status
// and body.
func apiBodyless(t testing.TB, s *testkit.Server, method, path string, params url.Values) (int, string) {
	t.Helper()
	q := protocol.SignAPIRequest(testkit.AppKey, testkit.AppSecret, method, path, params, nil, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.HTTPURL()+path+"?"+q, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// publish sends POST /apps/app-id/events with body (marshalled to JSON) and requires 200.
func publish(t testing.TB, s *testkit.Server, body map[string]any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	if status, resp := apiPost(t, s, "/apps/"+testkit.AppID+"/events", b); status != http.StatusOK {
		t.Fatalf("publish %s: HTTP %d %s", b, status, resp)
	}
}

// occupied reports whether a channel has subscribers, as the REST API says.
func occupied(t testing.TB, s *testkit.Server, channel string) bool {
	t.Helper()
	status, body := apiGet(t, s, "/apps/"+testkit.AppID+"/channels/"+url.PathEscape(channel), nil)
	if status != http.StatusOK {
		t.Fatalf("channel info %s: HTTP %d %s", channel, status, body)
	}
	var info struct {
		Occupied bool `json:"occupied"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatalf("channel info %s: %v: %s", channel, err, body)
	}
	return info.Occupied
}

// parseFrame decodes a frame written in a test table.
func parseFrame(t testing.TB, frame string) inFrame {
	t.Helper()
	var f inFrame
	if err := json.Unmarshal([]byte(frame), &f); err != nil {
		t.Fatalf("bad test frame %s: %v", frame, err)
	}
	return f
}
