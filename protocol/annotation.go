package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Annotations (ws-protocol: Sockudo's message annotations). An annotation is a small event
// attached to a mutable message (a reaction, a read receipt, a vote): its type names the
// summarizer that folds a message's annotations into the summary subscribers receive
// (sockudo_internal:message with action message.summary); raw annotation events go to
// subscriptions with mode ANNOTATION_SUBSCRIBE as sockudo_internal:annotation.

// Event names and the subscription mode of annotations (V2).
const (
	AnnotationEvent         = "sockudo_internal:annotation"
	MessageSummaryEvent     = "sockudo_internal:message"
	ModeSubscribe           = "SUBSCRIBE"
	ModeAnnotationSubscribe = "ANNOTATION_SUBSCRIBE"
	// MaxAnnotationTypeLen caps an annotation type name, as Sockudo does.
	MaxAnnotationTypeLen = 256
)

// AnnotationAction is what an annotation event does.
type AnnotationAction string

// The annotation actions.
const (
	AnnotationCreate AnnotationAction = "annotation.create"
	AnnotationDelete AnnotationAction = "annotation.delete"
)

// Summarizer is how a type's annotations fold into a summary (Sockudo's semantics).
type Summarizer string

// The summarizers.
const (
	// SummarizeTotal counts annotations: a create adds one, a delete removes one.
	SummarizeTotal Summarizer = "total"
	// SummarizeFlag is the set of clients that flagged the message.
	SummarizeFlag Summarizer = "flag"
	// SummarizeDistinct is, per name, the set of clients that used it; a client may use
	// several names.
	SummarizeDistinct Summarizer = "distinct"
	// SummarizeUnique is, per name, the clients whose latest annotation it is: one name per
	// client.
	SummarizeUnique Summarizer = "unique"
	// SummarizeMultiple is, per name, a count per client (annotations carry a count) plus
	// the count of annotations without a client.
	SummarizeMultiple Summarizer = "multiple"
)

// AnnotationType is a parsed type name: namespace:summarizer.vN (only v1 exists).
type AnnotationType struct {
	Namespace  string
	Summarizer Summarizer
	Version    int
}

// ErrAnnotationType is the error ParseAnnotationType wraps.
var ErrAnnotationType = errors.New("invalid annotation type")

// ParseAnnotationType reads a type name such as reaction:distinct.v1: a non-empty
// namespace, a colon, one of the summarizers, ".v1"; at most 256 bytes, no whitespace.
func ParseAnnotationType(s string) (AnnotationType, error) {
	if err := validIdentifier(s, MaxAnnotationTypeLen); err != nil {
		return AnnotationType{}, fmt.Errorf("%w: type %s", ErrAnnotationType, err)
	}
	ns, rest, ok := strings.Cut(s, ":")
	if !ok || ns == "" {
		return AnnotationType{}, fmt.Errorf("%w: %q must be namespace:summarizer.v1 (e.g. reaction:distinct.v1)", ErrAnnotationType, Truncate(s, 64))
	}
	i := strings.LastIndex(rest, ".v")
	if i < 0 {
		return AnnotationType{}, fmt.Errorf("%w: %q must be namespace:summarizer.v1 (e.g. reaction:distinct.v1)", ErrAnnotationType, Truncate(s, 64))
	}
	sum, ver := Summarizer(rest[:i]), rest[i+2:]
	switch sum {
	case SummarizeTotal, SummarizeFlag, SummarizeDistinct, SummarizeUnique, SummarizeMultiple:
	default:
		return AnnotationType{}, fmt.Errorf("%w: unsupported summarizer %q (total, flag, distinct, unique or multiple)", ErrAnnotationType, Truncate(string(sum), 64))
	}
	v, err := strconv.ParseUint(ver, 10, 16)
	if err != nil || ver[0] == '+' {
		return AnnotationType{}, fmt.Errorf("%w: invalid summarizer version %q", ErrAnnotationType, Truncate(ver, 32))
	}
	if v != 1 {
		return AnnotationType{}, fmt.Errorf("%w: unsupported summarizer version %d (only v1)", ErrAnnotationType, v)
	}
	return AnnotationType{Namespace: ns, Summarizer: sum, Version: int(v)}, nil
}

func validIdentifier(s string, max int) error {
	switch {
	case strings.TrimSpace(s) == "":
		return errors.New("must not be empty")
	case len(s) > max:
		return fmt.Errorf("must be at most %d bytes", max)
	case strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0:
		return errors.New("must not contain whitespace or control characters")
	}
	return nil
}

// Annotation is one stored annotation event: a create, or the delete of a create (which
// carries the deleted create's id, type, name, client id and count, without data).
type Annotation struct {
	// ID identifies the annotation a create made (a delete has its create's id).
	ID            string
	Action        AnnotationAction
	Serial        string
	MessageSerial string
	Type          string
	// Name and ClientID are "" when absent.
	Name     string
	ClientID string
	// Count is 0 when absent (counted as 1).
	Count uint64
	// Data is raw JSON (nil when absent); Encoding names its encoding ("" when none).
	Data        json.RawMessage
	Encoding    string
	TimestampMs int64
}

// Validate checks the fields the annotation's summarizer needs (Sockudo's rules): a name
// for distinct, unique and multiple, a client id for flag, distinct and unique, and a
// count, when given, above zero.
func (a *Annotation) Validate() error {
	t, err := ParseAnnotationType(a.Type)
	if err != nil {
		return err
	}
	switch t.Summarizer {
	case SummarizeDistinct, SummarizeUnique, SummarizeMultiple:
		if strings.TrimSpace(a.Name) == "" {
			return fmt.Errorf("annotation name is required for type %s", a.Type)
		}
	}
	switch t.Summarizer {
	case SummarizeFlag, SummarizeDistinct, SummarizeUnique:
		if strings.TrimSpace(a.ClientID) == "" {
			return fmt.Errorf("annotation client_id is required for type %s", a.Type)
		}
	}
	return nil
}

// AppendJSON appends the annotation as Sockudo sends it (camelCase; the id only on a
// create): {action, id, serial, messageSerial, type, name, clientId, count, data,
// encoding, timestamp}.
func (a *Annotation) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"action":`...)
	dst = AppendJSONString(dst, string(a.Action))
	if a.Action == AnnotationCreate && a.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = AppendJSONString(dst, a.ID)
	}
	dst = append(dst, `,"serial":`...)
	dst = AppendJSONString(dst, a.Serial)
	dst = append(dst, `,"messageSerial":`...)
	dst = AppendJSONString(dst, a.MessageSerial)
	dst = append(dst, `,"type":`...)
	dst = AppendJSONString(dst, a.Type)
	if a.Name != "" {
		dst = append(dst, `,"name":`...)
		dst = AppendJSONString(dst, a.Name)
	}
	if a.ClientID != "" {
		dst = append(dst, `,"clientId":`...)
		dst = AppendJSONString(dst, a.ClientID)
	}
	if a.Count != 0 {
		dst = append(dst, `,"count":`...)
		dst = strconv.AppendUint(dst, a.Count, 10)
	}
	if len(a.Data) > 0 {
		dst = append(dst, `,"data":`...)
		dst = append(dst, a.Data...)
	}
	if a.Encoding != "" {
		dst = append(dst, `,"encoding":`...)
		dst = AppendJSONString(dst, a.Encoding)
	}
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, a.TimestampMs, 10)
	return append(dst, '}')
}

// MarshalJSON implements json.Marshaler with AppendJSON.
func (a Annotation) MarshalJSON() ([]byte, error) { return a.AppendJSON(nil), nil }

// AnnotationMessage is the sockudo_internal:annotation frame of one annotation event.
func AnnotationMessage(channel string, a *Annotation) *Message {
	return &Message{Event: AnnotationEvent, Channel: channel, Data: a.AppendJSON(nil), PublishedAtMs: a.TimestampMs, Ephemeral: true}
}

// SummaryMessage is the sockudo_internal:message frame (action message.summary) of one
// message: data {action, serial, annotations: {summary: {type: summary}}}, extras
// {"ephemeral": true}.
func SummaryMessage(channel, messageSerial string, summary []TypeSummary) *Message {
	d := append(make([]byte, 0, 128), `{"action":"message.summary","serial":`...)
	d = AppendJSONString(d, messageSerial)
	d = append(d, `,"annotations":{"summary":{`...)
	for i := range summary {
		if i > 0 {
			d = append(d, ',')
		}
		d = AppendJSONString(d, summary[i].Type)
		d = append(d, ':')
		d = append(d, summary[i].Summary...)
	}
	d = append(d, "}}}"...)
	return &Message{Event: MessageSummaryEvent, Channel: channel, Data: d, Extras: []byte(`{"ephemeral":true}`), Ephemeral: true}
}

// TypeSummary is the summary of one annotation type of a message, as JSON.
type TypeSummary struct {
	Type    string
	Summary json.RawMessage
}

// Summarize folds a message's annotation events, in serial order, into one summary per
// type (sorted by type), Sockudo's semantics: a repeated serial is applied once; a create
// whose delete came first is ignored; types that had events but nothing left summarize
// empty. Events of unknown types are skipped.
func Summarize(events []Annotation) []TypeSummary { return SummarizeClipped(events, -1) }

// SummarizeClipped is Summarize listing at most limit client ids (or client counts) per
// summary, the first in sorted order, with clipped set when some were left out; totals
// still count every client. A negative limit lists them all.
func SummarizeClipped(events []Annotation, limit int) []TypeSummary {
	byType := map[string][]*Annotation{}
	var types []string
	for i := range events {
		e := &events[i]
		if _, ok := byType[e.Type]; !ok {
			types = append(types, e.Type)
		}
		byType[e.Type] = append(byType[e.Type], e)
	}
	sort.Strings(types)
	out := make([]TypeSummary, 0, len(types))
	for _, typ := range types {
		t, err := ParseAnnotationType(typ)
		if err != nil {
			continue
		}
		out = append(out, TypeSummary{Type: typ, Summary: summarizeType(t.Summarizer, byType[typ], limit)})
	}
	return out
}

type identified struct {
	Total     int      `json:"total"`
	ClientIDs []string `json:"clientIds"`
	Clipped   bool     `json:"clipped"`
}

type multipleBucket struct {
	Total             uint64            `json:"total"`
	ClientCounts      map[string]uint64 `json:"clientCounts"`
	TotalUnidentified uint64            `json:"totalUnidentified"`
	Clipped           bool              `json:"clipped"`
	TotalClientIDs    int               `json:"totalClientIds"`
}

func sortedSet(set map[string]bool, limit int) identified {
	ids := make([]string, 0, len(set))
	for k := range set {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	if limit >= 0 && len(ids) > limit {
		return identified{Total: len(ids), ClientIDs: ids[:limit], Clipped: true}
	}
	return identified{Total: len(ids), ClientIDs: ids}
}

func summarizeType(s Summarizer, events []*Annotation, limit int) json.RawMessage {
	sort.SliceStable(events, func(i, j int) bool { return events[i].Serial < events[j].Serial })
	created := map[string]bool{} // ids with a create among the events
	for _, e := range events {
		if e.Action == AnnotationCreate {
			created[e.ID] = true
		}
	}
	seenSerial, seenCreate, deleted := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var total uint64
	flags := map[string]bool{}
	names := map[string]map[string]bool{}
	clientName := map[string]string{}
	multi := map[string]*multipleBucket{}
	removeClient := func(name, client string) {
		if set := names[name]; set != nil {
			delete(set, client)
			if len(set) == 0 {
				delete(names, name)
			}
		}
	}
	for _, e := range events {
		if seenSerial[e.Serial] {
			continue
		}
		seenSerial[e.Serial] = true
		create := e.Action == AnnotationCreate
		if create {
			if deleted[e.ID] {
				continue
			}
			seenCreate[e.ID] = true
		} else if created[e.ID] {
			deleted[e.ID] = true
			if !seenCreate[e.ID] {
				continue
			}
		}
		switch s {
		case SummarizeTotal:
			if create {
				total++
			} else if total > 0 {
				total--
			}
		case SummarizeFlag:
			if create {
				flags[e.ClientID] = true
			} else {
				delete(flags, e.ClientID)
			}
		case SummarizeDistinct:
			if create {
				if names[e.Name] == nil {
					names[e.Name] = map[string]bool{}
				}
				names[e.Name][e.ClientID] = true
			} else {
				removeClient(e.Name, e.ClientID)
			}
		case SummarizeUnique:
			if create {
				if prev, ok := clientName[e.ClientID]; ok && prev != e.Name {
					removeClient(prev, e.ClientID)
				}
				clientName[e.ClientID] = e.Name
				if names[e.Name] == nil {
					names[e.Name] = map[string]bool{}
				}
				names[e.Name][e.ClientID] = true
			} else if active, ok := clientName[e.ClientID]; ok {
				delete(clientName, e.ClientID)
				removeClient(active, e.ClientID)
			}
		case SummarizeMultiple:
			b := multi[e.Name]
			if b == nil {
				b = &multipleBucket{ClientCounts: map[string]uint64{}}
				multi[e.Name] = b
			}
			n := e.Count
			if n == 0 {
				n = 1
			}
			switch {
			case create && e.ClientID != "":
				b.ClientCounts[e.ClientID] += n
			case create:
				b.TotalUnidentified += n
			case e.ClientID != "":
				// Sockudo: deleting one of a client's annotations removes the client's
				// whole count from the name.
				delete(b.ClientCounts, e.ClientID)
			}
		}
	}
	var v any
	switch s {
	case SummarizeTotal:
		v = struct {
			Total uint64 `json:"total"`
		}{total}
	case SummarizeFlag:
		v = sortedSet(flags, limit)
	case SummarizeDistinct, SummarizeUnique:
		m := make(map[string]identified, len(names))
		for name, set := range names {
			m[name] = sortedSet(set, limit)
		}
		v = m
	case SummarizeMultiple:
		for _, b := range multi {
			b.TotalClientIDs = len(b.ClientCounts)
			b.Total = b.TotalUnidentified
			for _, n := range b.ClientCounts {
				b.Total += n
			}
			if limit >= 0 && len(b.ClientCounts) > limit {
				ids := make([]string, 0, len(b.ClientCounts))
				for id := range b.ClientCounts {
					ids = append(ids, id)
				}
				sort.Strings(ids)
				for _, id := range ids[limit:] {
					delete(b.ClientCounts, id)
				}
				b.Clipped = true
			}
		}
		v = multi
	}
	out, _ := json.Marshal(v) // maps marshal with sorted keys, as Sockudo's BTreeMaps
	return out
}

// FormatAnnotationSerial formats the n-th annotation serial of a channel: fixed width, so
// that serials compare in the order they were assigned.
func FormatAnnotationSerial(n uint64) string {
	return string(appendPadded(make([]byte, 0, 24), n)) + ":a"
}

// ParseAnnotationSerial reads a serial FormatAnnotationSerial made (a list cursor, the
// serial of an annotation to delete).
func ParseAnnotationSerial(s string) (uint64, bool) {
	digits, ok := strings.CutSuffix(s, ":a")
	if !ok || len(digits) != 20 {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

// IsAnnotationFrame reports whether m is an annotation event or a summary: V2 only, never
// cached, stored or replayed.
func (m *Message) IsAnnotationFrame() bool {
	return m.Event == AnnotationEvent || m.Event == MessageSummaryEvent
}
