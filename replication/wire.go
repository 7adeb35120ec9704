package replication

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pushwire/pushwire/protocol"
)

// The node-to-node envelope format.
//
// Every byte one node sends another is a JSON object whose member names are spelled out
// here and in envelope's tags — never derived from a Go identifier of another package, so
// renaming a field of protocol.Message cannot silently change what goes between nodes.
//
// Names. The envelope's own members were short explicit names before this format was
// versioned (k, m, x, c, u, i, n, s, h, a); the message inside a publish or a summary was
// whatever encoding/json made of protocol.Message: its Go field names (Event, Channel,
// Data, ..., Mutable{Action, MessageSerial, HistorySerial, Version{Serial, ClientID,
// TimestampMs, Description, Metadata}, Full}). All of those names stay exactly as they were
// on the wire: during a rolling upgrade old and new nodes share one broker, and a renamed
// member would be read as absent by the other side (a publish without an event is refused,
// a message without its serial is delivered unordered). The only change is that zero
// members of a message are now omitted, which an old reader decodes to the same zero value.
// Byte-valued members (Data, Extras, Full, Metadata, i) stay base64 strings as before.
//
// Version. An envelope carries its format version: "v" the major, "vn" the minor.
//   - Format 1.0 is the unversioned format of earlier nodes: no "v" member. A node reads it as 1.0.
//   - Format 1.1 (this one) adds "v" and "vn". Older nodes ignore unknown members, so they
//     read 1.1 as they read 1.0.
//   - A minor version only adds members that a reader may ignore without misreading the
//     envelope; readers ignore unknown members (encoding/json's default; never turn on
//     DisallowUnknownFields here). A node reads any minor of its major. encoding/json
//     matches member names without regard to case, so a new member's name must differ from
//     every existing one (here and in the nested types) by more than case.
//   - A new major version is for a change an older reader would misread (a member's meaning
//     changed, a required member added). A node receiving a major newer than its own drops
//     the envelope, counts it (Options.OnRefusedEnvelope) and logs it once per peer
//     and version, instead of acting on it. A rolling upgrade across a major version
//     therefore needs the newer nodes to keep sending the older major until every node
//     reads the newer one.
//
// The golden bytes of every kind are replication/testdata/envelope_*.golden
// (TestEnvelopeGolden fails when the encoding changes); TestEnvelopeMixedVersions feeds a
// node the previous format, a future minor with an extra member and a future major.

// Envelope format version this node sends (see above).
const (
	envFormatMajor = 1
	envFormatMinor = 1
)

// errNewerEnvelope is decodeEnvelope's error for an envelope of a major version this node
// cannot read.
type errNewerEnvelope struct{ major int }

func (e errNewerEnvelope) Error() string {
	return fmt.Sprintf("cluster envelope: format version %d is newer than this node's %d", e.major, envFormatMajor)
}

// wireEnvelope is the envelope as it travels between nodes.
type wireEnvelope struct {
	// Major and Minor are the format version ("v" absent: 1.0, the unversioned format).
	Major   int                      `json:"v,omitempty"`
	Minor   int                      `json:"vn,omitempty"`
	Kind    string                   `json:"k"`
	Msg     *wireMessage             `json:"m,omitempty"`
	Except  string                   `json:"x,omitempty"`
	Channel string                   `json:"c,omitempty"`
	User    string                   `json:"u,omitempty"`
	Info    []byte                   `json:"i,omitempty"`
	Counts  map[string]int           `json:"n,omitempty"`
	Apps    map[string]*nodeAppState `json:"s,omitempty"`
	History *historyChange           `json:"h,omitempty"`
	Summary *summaryEnvelope         `json:"a,omitempty"`
}

// historyChange is a channels.HistoryChange between nodes.
type historyChange struct {
	// Reset drops everything of the channel; otherwise serials below Cut of Stream are gone.
	Reset  bool   `json:"r,omitempty"`
	Stream string `json:"s,omitempty"`
	Cut    uint64 `json:"c,omitempty"`
}

// summaryEnvelope is an annotation summary between nodes: which message, and its version
// (the store's last annotation serial of it).
type summaryEnvelope struct {
	MessageSerial string `json:"s"`
	Version       uint64 `json:"v"`
}

// wireMessage is a protocol.Message between nodes. Its member names are the Go field names
// the unversioned format used (see above).
type wireMessage struct {
	Event         string            `json:"Event,omitempty"`
	Channel       string            `json:"Channel,omitempty"`
	Data          []byte            `json:"Data,omitempty"`
	Name          string            `json:"Name,omitempty"`
	UserID        string            `json:"UserID,omitempty"`
	Tags          map[string]string `json:"Tags,omitempty"`
	MessageID     string            `json:"MessageID,omitempty"`
	StreamID      string            `json:"StreamID,omitempty"`
	Serial        uint64            `json:"Serial,omitempty"`
	Extras        []byte            `json:"Extras,omitempty"`
	Ephemeral     bool              `json:"Ephemeral,omitempty"`
	NoDelta       bool              `json:"NoDelta,omitempty"`
	PublishedAtMs int64             `json:"PublishedAtMs,omitempty"`
	Mutable       *wireMutable      `json:"Mutable,omitempty"`
}

// wireMutable is a protocol.Mutable between nodes.
type wireMutable struct {
	Action        string      `json:"Action,omitempty"`
	MessageSerial string      `json:"MessageSerial,omitempty"`
	HistorySerial uint64      `json:"HistorySerial,omitempty"`
	Version       wireVersion `json:"Version"`
	Full          []byte      `json:"Full,omitempty"`
}

// wireVersion is a protocol.VersionMeta between nodes.
type wireVersion struct {
	Serial      string `json:"Serial,omitempty"`
	ClientID    string `json:"ClientID,omitempty"`
	TimestampMs int64  `json:"TimestampMs,omitempty"`
	Description string `json:"Description,omitempty"`
	Metadata    []byte `json:"Metadata,omitempty"`
}

func toWireMessage(m *protocol.Message) *wireMessage {
	if m == nil {
		return nil
	}
	w := &wireMessage{Event: m.Event, Channel: m.Channel, Data: m.Data, Name: m.Name, UserID: m.UserID, Tags: m.Tags,
		MessageID: m.MessageID, StreamID: m.StreamID, Serial: m.Serial, Extras: m.Extras, Ephemeral: m.Ephemeral,
		NoDelta: m.NoDelta, PublishedAtMs: m.PublishedAtMs}
	if mu := m.Mutable; mu != nil {
		v := mu.Version
		w.Mutable = &wireMutable{Action: string(mu.Action), MessageSerial: mu.MessageSerial, HistorySerial: mu.HistorySerial,
			Version: wireVersion{Serial: v.Serial, ClientID: v.ClientID, TimestampMs: v.TimestampMs, Description: v.Description, Metadata: v.Metadata},
			Full:    mu.Full}
	}
	return w
}

func (w *wireMessage) message() *protocol.Message {
	if w == nil {
		return nil
	}
	m := &protocol.Message{Event: w.Event, Channel: w.Channel, Data: w.Data, Name: w.Name, UserID: w.UserID, Tags: w.Tags,
		MessageID: w.MessageID, StreamID: w.StreamID, Serial: w.Serial, Extras: w.Extras, Ephemeral: w.Ephemeral,
		NoDelta: w.NoDelta, PublishedAtMs: w.PublishedAtMs}
	if mu := w.Mutable; mu != nil {
		v := mu.Version
		m.Mutable = &protocol.Mutable{Action: protocol.Action(mu.Action), MessageSerial: mu.MessageSerial, HistorySerial: mu.HistorySerial,
			Version: protocol.VersionMeta{Serial: v.Serial, ClientID: v.ClientID, TimestampMs: v.TimestampMs, Description: v.Description, Metadata: v.Metadata},
			Full:    mu.Full}
	}
	return m
}

// encodeEnvelope is the bytes of e in this node's format version.
func encodeEnvelope(e *envelope) ([]byte, error) {
	w := wireEnvelope{Major: envFormatMajor, Minor: envFormatMinor, Kind: e.Kind, Msg: toWireMessage(e.Msg), Except: e.Except,
		Channel: e.Channel, User: e.User, Info: e.Info, Counts: e.Counts, Apps: e.Apps, History: e.History, Summary: e.Summary}
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("encode %s envelope: %w", e.Kind, err)
	}
	return b, nil
}

// unmarshalEnvelope parses the wire form; decodeEnvelope checks it. A major version newer
// than this node's is refused with errNewerEnvelope before any other member is looked at.
func unmarshalEnvelope(b []byte) (*envelope, error) {
	var w wireEnvelope
	if err := json.Unmarshal(b, &w); err != nil {
		var v struct {
			Major json.RawMessage `json:"v"`
		}
		// A newer major may change a member's type: refuse it as newer, not as malformed.
		if json.Unmarshal(b, &v) == nil {
			var major int
			if json.Unmarshal(v.Major, &major) == nil && major > envFormatMajor {
				return nil, errNewerEnvelope{major}
			}
		}
		return nil, fmt.Errorf("cluster envelope: %w", err)
	}
	if w.Major > envFormatMajor {
		return nil, errNewerEnvelope{w.Major}
	}
	if w.Major < 0 || w.Major == 0 && w.Minor != 0 {
		return nil, fmt.Errorf("cluster envelope: format version %d.%d", w.Major, w.Minor)
	}
	return &envelope{Kind: w.Kind, Msg: w.Msg.message(), Except: w.Except, Channel: w.Channel, User: w.User, Info: w.Info,
		Counts: w.Counts, Apps: w.Apps, History: w.History, Summary: w.Summary}, nil
}

// isNewerEnvelope reports whether err is decodeEnvelope refusing a newer major version,
// and which.
func isNewerEnvelope(err error) (int, bool) {
	var n errNewerEnvelope
	if errors.As(err, &n) {
		return n.major, true
	}
	return 0, false
}
