package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// v2Frame is a server frame of the V2 envelope, decoded strictly: an unknown key fails.
type v2Frame struct {
	Event     string            `json:"event"`
	Channel   string            `json:"channel,omitempty"`
	Data      json.RawMessage   `json:"data,omitempty"`
	Name      string            `json:"name,omitempty"`
	UserID    string            `json:"user_id,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	MessageID string            `json:"message_id,omitempty"`
	StreamID  string            `json:"stream_id,omitempty"`
	Serial    uint64            `json:"serial,omitempty"`
	Extras    json.RawMessage   `json:"extras,omitempty"`
	DeltaSeq  *uint64           `json:"__delta_seq,omitempty"`
	DeltaKey  *string           `json:"__conflation_key,omitempty"`

	raw string
}

// dataString returns data as a string: the content of a JSON string, else the raw JSON.
func (f v2Frame) dataString() string {
	s, _ := protocol.StringOrRaw(f.Data)
	return s
}

// v2Client is a protocol=2 client for the integration tests (history, delta and mutable
// messages reuse it): it checks every frame is a well-formed V2 envelope, de-duplicates by
// message_id as sockudo-js does, and keeps each channel's position (stream_id, serial,
// last message_id) for resume.
type v2Client struct {
	*client
	positions map[string]protocol.Position
	seenIDs   map[string]bool
}

// v2Options are the query parameters of a V2 connection beyond protocol=2.
type v2Options struct {
	noEcho bool   // echo_messages=false
	token  string // capability token
	extra  string // raw extra query, e.g. "append_mode=full"
}

// v2URL is the URL sockudo_flutter builds for a V2 connection (it always sends format and
// append_mode), plus the options.
func v2URL(s *testkit.Server, key string, o v2Options) string {
	u := strings.Replace(s.WSURL(key), "protocol=7", "protocol=2", 1)
	u = strings.Replace(u, "client=js&version=8.6.0", "client=flutter&version=2.2.0", 1)
	u += "&format=json"
	if !strings.Contains(o.extra, "append_mode=") {
		u += "&append_mode=delta"
	}
	if o.noEcho {
		u += "&echo_messages=false"
	}
	if o.token != "" {
		u += "&token=" + url.QueryEscape(o.token)
	}
	if o.extra != "" {
		u += "&" + o.extra
	}
	return u
}

var v2HandshakeRE = regexp.MustCompile(`^\{"event":"sockudo:connection_established","data":"\{\\"socket_id\\":\\"(\d+\.\d+)\\",\\"activity_timeout\\":(\d+)\}"\}$`)

// connectV2 opens a V2 connection to the default app and reads its handshake.
func connectV2(t testing.TB, s *testkit.Server, o v2Options) *v2Client {
	t.Helper()
	c := dialV2(t, s, o)
	got := c.next(t)
	m := v2HandshakeRE.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("V2 handshake\n got: %s\nwant: %s", got, `{"event":"sockudo:connection_established","data":"{\"socket_id\":\"N.N\",\"activity_timeout\":N}"}`)
	}
	c.socketID = m[1]
	return c
}

// dialV2 opens a V2 connection without reading anything.
func dialV2(t testing.TB, s *testkit.Server, o v2Options) *v2Client {
	t.Helper()
	return &v2Client{client: dial(t, v2URL(s, testkit.AppKey, o), dialOptions{}), positions: map[string]protocol.Position{}, seenIDs: map[string]bool{}}
}

// nextV2 reads the next frame, decodes it strictly and records the channel position of any
// frame carrying a serial.
func (c *v2Client) nextV2(t testing.TB) v2Frame {
	t.Helper()
	raw := c.next(t)
	var f v2Frame
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("V2 frame does not decode strictly: %v: %s", err, raw)
	}
	f.raw = raw
	if strings.HasPrefix(f.Event, "pusher:") || strings.HasPrefix(f.Event, "pusher_internal:") {
		t.Fatalf("V2 connection got a V1 system frame: %s", raw)
	}
	if f.MessageID != "" && !protocol.ValidMessageUUID(f.MessageID) {
		t.Fatalf("message_id %q is not a server message id (UUIDv8): %s", f.MessageID, raw)
	}
	if f.StreamID != "" && !protocol.ValidUUID(f.StreamID) {
		t.Fatalf("stream_id %q is not a UUIDv4: %s", f.StreamID, raw)
	}
	// The ack carries the channel's head, not what this client holds: a reconnecting client
	// keeps its old position for sockudo:resume.
	if f.Channel != "" && f.Serial != 0 && f.Event != "sockudo_internal:subscription_succeeded" {
		c.positions[f.Channel] = protocol.Position{StreamID: f.StreamID, Serial: f.Serial, LastMessageID: f.MessageID}
	}
	return f
}

// nextMessage reads frames until a channel message (sockudo:message.* mutations included)
// that is not a duplicate (by message_id), skipping nothing else: any other frame fails
// the test.
func (c *v2Client) nextMessage(t testing.TB) v2Frame {
	t.Helper()
	for {
		f := c.nextV2(t)
		if strings.HasPrefix(f.Event, "sockudo") && !strings.HasPrefix(f.Event, protocol.EventMessagePrefix) {
			t.Fatalf("want a channel message, got %s", f.raw)
		}
		if f.MessageID != "" {
			if c.seenIDs[f.MessageID] {
				continue
			}
			c.seenIDs[f.MessageID] = true
		}
		return f
	}
}

// expectV2 reads the next frame and requires event (and channel when given).
func (c *v2Client) expectV2(t testing.TB, event, channel string) v2Frame {
	t.Helper()
	f := c.nextV2(t)
	if f.Event != event || (channel != "" && f.Channel != channel) {
		t.Fatalf("frame\n got: %s\nwant event %s on %q", f.raw, event, channel)
	}
	return f
}

// expectV2Error reads a sockudo:error with code and returns its message.
func (c *v2Client) expectV2Error(t testing.TB, code int) string {
	t.Helper()
	f := c.expectV2(t, "sockudo:error", "")
	var d errorData
	if strictUnmarshal(f.Data, &d) != nil || d.Code != code || d.Message == "" {
		t.Fatalf("error frame %s, want code %d with a message", f.raw, code)
	}
	return d.Message
}

// subscribeV2 sends sockudo:subscribe with extra data members (filter, rewind, ...) and
// expects the acknowledgement, returned decoded.
func (c *v2Client) subscribeV2(t testing.TB, channel string, extra map[string]any) v2Frame {
	t.Helper()
	c.sendSubscribeV2(t, channel, extra)
	return c.expectV2(t, "sockudo_internal:subscription_succeeded", channel)
}

// sendSubscribeV2 sends sockudo:subscribe, signing private and presence channels
// (extra["channel_data"] for presence).
func (c *v2Client) sendSubscribeV2(t testing.TB, channel string, extra map[string]any) {
	t.Helper()
	d := map[string]any{"channel": channel, "auth": ""}
	for k, v := range extra {
		d[k] = v
	}
	if strings.HasPrefix(channel, "private-") || strings.HasPrefix(channel, "presence-") {
		cd, _ := d["channel_data"].(string)
		d["auth"] = c.channelAuth(channel, cd)
	}
	c.sendEvent(t, "sockudo:subscribe", "", d)
}

// pingV2 sends sockudo:ping and requires sockudo:pong next: nothing else was queued.
func (c *v2Client) pingV2(t testing.TB) {
	t.Helper()
	c.send(t, `{"event":"sockudo:ping","data":{}}`)
	c.expect(t, `{"event":"sockudo:pong"}`)
}

// expectQuiet proves nothing is pending for the client (a ping round trip comes back first).
func (c *v2Client) expectQuiet(t testing.TB) { c.pingV2(t) }

// token mints a capability token for the default app.
func mintToken(t testing.TB, client string, grants map[string][]string, ttl time.Duration) string {
	t.Helper()
	tok, err := protocol.SignCapabilityToken(testkit.AppKey, testkit.AppSecret, protocol.TokenRequest{
		ClientID: client, JTI: protocol.NewUUID(), Capability: grants, IssuedAt: time.Now(), TTL: ttl,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// publishBody marshals a publish body for apiPost.
func publishBody(t testing.TB, body map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// normalizeIDs replaces the values of message_id (checked to be a UUIDv8, protocol.MessageIDs)
// and stream_id (checked to be UUIDv4) with
// placeholders, so a frame can be compared byte for byte with a golden file.
func normalizeIDs(t testing.TB, frame string) string {
	t.Helper()
	re := regexp.MustCompile(`"(message_id|stream_id)":"([^"]*)"`)
	frame = re.ReplaceAllStringFunc(frame, func(m string) string {
		sub := re.FindStringSubmatch(m)
		if valid := protocol.ValidUUID; sub[1] == "message_id" && !protocol.ValidMessageUUID(sub[2]) || sub[1] == "stream_id" && !valid(sub[2]) {
			t.Fatalf("%s %q is not a server id in %s", sub[1], sub[2], frame)
		}
		return fmt.Sprintf(`"%s":"<%s>"`, sub[1], strings.ToUpper(sub[1]))
	})
	// Mutable-message headers: serials in Sockudo's {ms}:{node}:{counter} form, a time.
	serials := regexp.MustCompile(`"sockudo_(message|version)_serial":"([^"]*)"`)
	frame = serials.ReplaceAllStringFunc(frame, func(m string) string {
		sub := serials.FindStringSubmatch(m)
		if !regexp.MustCompile(`^\d{20}:[0-9a-f]+:\d{20}$`).MatchString(sub[2]) {
			t.Fatalf("sockudo_%s_serial %q is not {ms:020}:{node}:{counter:020} in %s", sub[1], sub[2], frame)
		}
		return fmt.Sprintf(`"sockudo_%s_serial":"<%s_SERIAL>"`, sub[1], strings.ToUpper(sub[1]))
	})
	return regexp.MustCompile(`"sockudo_version_timestamp_ms":\d{13}`).ReplaceAllString(frame, `"sockudo_version_timestamp_ms":"<TIMESTAMP_MS>"`)
}

// compactJSON compacts a JSON text (for golden files written with indentation).
func compactJSON(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("compact %s: %v", s, err)
	}
	return b.String()
}

// mutableState is what a client holds for one mutable message.
type mutableState struct {
	// Data is the current data as raw JSON; nil is null (absent).
	Data          json.RawMessage
	Action        string
	VersionSerial string
}

// reducer folds mutable-message frames into each message's latest state, by the client rule
// of ws-protocol §5.3 (sockudo-js reduceMutableMessageEvent): a frame is recognised by
// extras.headers.sockudo_action and sockudo_message_serial; create, update and delete
// replace the data (null when absent); append concatenates current + fragment, both strings
// (absent current data takes the fragment); on an append_mode=full connection (full) an
// append carries the whole string and replaces. A frame whose version is not newer than
// the state's is ignored, so a replayed or duplicated delivery cannot append twice.
type reducer struct {
	full bool
	msgs map[string]*mutableState
}

func newReducer(full bool) *reducer { return &reducer{full: full, msgs: map[string]*mutableState{}} }

// mutableHeaders are the reserved headers of a mutable-message frame.
type mutableHeaders struct {
	Action        string `json:"sockudo_action"`
	MessageSerial string `json:"sockudo_message_serial"`
	VersionSerial string `json:"sockudo_version_serial"`
	VersionTimeMs *int64 `json:"sockudo_version_timestamp_ms"`
	HistorySerial *int64 `json:"sockudo_history_serial"`
}

// headersOf returns a frame's reserved headers (ok false when it is no mutable message).
func headersOf(f v2Frame) (mutableHeaders, bool) {
	var x struct {
		Headers mutableHeaders `json:"headers"`
	}
	if len(f.Extras) == 0 || json.Unmarshal(f.Extras, &x) != nil {
		return mutableHeaders{}, false
	}
	h := x.Headers
	return h, h.Action != "" && h.MessageSerial != ""
}

// apply folds one frame; it reports whether the frame changed a message's state.
func (r *reducer) apply(f v2Frame) (bool, error) {
	h, ok := headersOf(f)
	if !ok {
		return false, nil
	}
	cur := r.msgs[h.MessageSerial]
	if cur != nil && h.VersionSerial <= cur.VersionSerial {
		return false, nil
	}
	var data json.RawMessage
	if len(f.Data) > 0 && string(f.Data) != "null" {
		data = append(json.RawMessage(nil), f.Data...)
	}
	switch h.Action {
	case "message.create", "message.update", "message.delete":
	case "message.append":
		var frag string
		if json.Unmarshal(data, &frag) != nil {
			return false, fmt.Errorf("append fragment %s is not a string", f.Data)
		}
		if cur != nil && cur.Data != nil && !r.full {
			var old string
			if json.Unmarshal(cur.Data, &old) != nil {
				return false, fmt.Errorf("append to non-string data %s", cur.Data)
			}
			frag = old + frag
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false) // as the server encodes: < > & stay as they are
		_ = enc.Encode(frag)
		data = bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	default:
		return false, fmt.Errorf("unknown sockudo_action %q", h.Action)
	}
	r.msgs[h.MessageSerial] = &mutableState{Data: data, Action: strings.TrimPrefix(h.Action, "message."), VersionSerial: h.VersionSerial}
	return true, nil
}
