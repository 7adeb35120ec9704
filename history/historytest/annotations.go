package historytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/pushwire/pushwire/annotations"
	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// AnnotationStore is a history store that also keeps mutable messages and their
// annotations.
type AnnotationStore interface {
	VersionStore
	annotations.Store
}

// RunAnnotations runs the annotation suite. newStore must return an empty store each time.
func RunAnnotations(t *testing.T, newStore func(t *testing.T) AnnotationStore) {
	t.Run("publish and read", func(t *testing.T) { testAnnotationPublish(t, newStore(t)) })
	t.Run("paging and type filter", func(t *testing.T) { testAnnotationPaging(t, newStore(t)) })
	t.Run("delete", func(t *testing.T) { testAnnotationDelete(t, newStore(t)) })
	t.Run("unknown message", func(t *testing.T) { testAnnotationUnknown(t, newStore(t)) })
	t.Run("annotated messages", func(t *testing.T) { testAnnotatedMessages(t, newStore(t)) })
	t.Run("concurrent writers", func(t *testing.T) {
		s := newStore(t)
		testAnnotationConcurrent(t, s, s)
	})
}

// RunAnnotationsShared checks two handles on one store (two nodes sharing a database):
// concurrent annotations through both get distinct serials that order them as stored.
func RunAnnotationsShared(t *testing.T, open func(t *testing.T) (a, b AnnotationStore)) {
	a, b := open(t)
	testAnnotationConcurrent(t, a, b)
}

func annotation(msg, typ, name, client string) protocol.Annotation {
	return protocol.Annotation{ID: protocol.NewUUID(), Action: protocol.AnnotationCreate, MessageSerial: msg, Type: typ, Name: name,
		ClientID: client, TimestampMs: 1700000000000}
}

func publishAnn(t *testing.T, s AnnotationStore, app, channel string, a protocol.Annotation) protocol.Annotation {
	t.Helper()
	if err := s.PublishAnnotation(ctx, app, channel, &a); err != nil {
		t.Fatalf("PublishAnnotation: %v", err)
	}
	if _, ok := protocol.ParseAnnotationSerial(a.Serial); !ok {
		t.Fatalf("PublishAnnotation gave serial %q", a.Serial)
	}
	return a
}

func readAnnotations(t *testing.T, s AnnotationStore, app, channel, msg string) []protocol.Annotation {
	t.Helper()
	out, more, err := s.ReadAnnotations(ctx, app, channel, msg, annotations.Query{Limit: 1000})
	if err != nil || more {
		t.Fatalf("ReadAnnotations: %d, more %v, %v", len(out), more, err)
	}
	return out
}

func testAnnotationPublish(t *testing.T, s AnnotationStore) {
	m := create(t, s, "a", "chat", `"hi"`)
	other := create(t, s, "a", "chat", `"other"`)
	a1 := annotation(m.Mutable.MessageSerial, "reaction:multiple.v1", "vote", "alice")
	a1.Count, a1.Data, a1.Encoding = 3, []byte(`{"emoji":"👍","nul":"a\u0000b"}`), "json"
	a1 = publishAnn(t, s, "a", "chat", a1)
	a2 := publishAnn(t, s, "a", "chat", annotation(m.Mutable.MessageSerial, "reaction:total.v1", "", ""))
	a3 := publishAnn(t, s, "a", "chat", annotation(other.Mutable.MessageSerial, "reaction:flag.v1", "", "bob"))
	if !(a1.Serial < a2.Serial && a2.Serial < a3.Serial) {
		t.Fatalf("serials not increasing: %s %s %s", a1.Serial, a2.Serial, a3.Serial)
	}
	got := readAnnotations(t, s, "a", "chat", m.Mutable.MessageSerial)
	if len(got) != 2 {
		t.Fatalf("read %d annotations, want 2", len(got))
	}
	if fmt.Sprint(got[0]) != fmt.Sprint(a1) || string(got[0].Data) != string(a1.Data) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got[0], a1)
	}
	if got[1].Serial != a2.Serial || got[1].Name != "" || got[1].ClientID != "" || got[1].Count != 0 || got[1].Data != nil {
		t.Fatalf("bare annotation came back as %+v", got[1])
	}
	// Another channel and another app have their own.
	if n := len(readAnnotations(t, s, "a", "chat", other.Mutable.MessageSerial)); n != 1 {
		t.Fatalf("other message: %d annotations", n)
	}
	m2 := create(t, s, "b", "chat", `"x"`)
	b1 := publishAnn(t, s, "b", "chat", annotation(m2.Mutable.MessageSerial, "reaction:total.v1", "", ""))
	if n, _ := protocol.ParseAnnotationSerial(b1.Serial); n != 1 {
		t.Fatalf("first annotation of another app: serial %s", b1.Serial)
	}
}

func testAnnotationPaging(t *testing.T, s AnnotationStore) {
	m := create(t, s, "a", "room", `"hi"`)
	ms := m.Mutable.MessageSerial
	var want []string
	for i := 0; i < 7; i++ {
		typ := "reaction:distinct.v1"
		if i%2 == 1 {
			typ = "receipt:flag.v1"
		}
		a := publishAnn(t, s, "a", "room", annotation(ms, typ, "like", fmt.Sprintf("u%d", i)))
		if i%2 == 0 {
			want = append(want, a.Serial)
		}
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		page, more, err := s.ReadAnnotations(ctx, "a", "room", ms, annotations.Query{Type: "reaction:distinct.v1", After: after, Limit: 2})
		if err != nil || pages > 5 {
			t.Fatalf("page %d: %v", pages, err)
		}
		for _, a := range page {
			if a.Type != "reaction:distinct.v1" {
				t.Fatalf("type filter let %s through", a.Type)
			}
			got = append(got, a.Serial)
		}
		if !more {
			break
		}
		after = page[len(page)-1].Serial
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("paged %v, want %v", got, want)
	}
	all, more, err := s.ReadAnnotations(ctx, "a", "room", ms, annotations.Query{Limit: 7})
	if err != nil || more || len(all) != 7 {
		t.Fatalf("exact page: %d, more %v, %v", len(all), more, err)
	}
}

func testAnnotationDelete(t *testing.T, s AnnotationStore) {
	m := create(t, s, "a", "chat", `"hi"`)
	other := create(t, s, "a", "chat", `"other"`)
	ms := m.Mutable.MessageSerial
	c := annotation(ms, "reaction:multiple.v1", "vote", "alice")
	c.Count = 4
	c = publishAnn(t, s, "a", "chat", c)
	allow := func(protocol.Annotation) error { return nil }
	refused := errors.New("refused")
	var seen protocol.Annotation
	_, _, err := s.DeleteAnnotation(ctx, "a", "chat", ms, c.Serial, 5, func(a protocol.Annotation) error { seen = a; return refused })
	if !errors.Is(err, refused) || seen.ID != c.ID || seen.ClientID != "alice" {
		t.Fatalf("refused delete: %v, authorize saw %+v", err, seen)
	}
	del, dup, err := s.DeleteAnnotation(ctx, "a", "chat", ms, c.Serial, 1700000000005, allow)
	if err != nil || dup {
		t.Fatalf("delete: dup %v, %v", dup, err)
	}
	if del.Action != protocol.AnnotationDelete || del.ID != c.ID || del.Type != c.Type || del.Name != "vote" || del.ClientID != "alice" ||
		del.Count != 4 || del.Data != nil || del.TimestampMs != 1700000000005 || del.Serial <= c.Serial {
		t.Fatalf("delete event %+v of %+v", del, c)
	}
	again, dup, err := s.DeleteAnnotation(ctx, "a", "chat", ms, c.Serial, 9, allow)
	if err != nil || !dup || again.Serial != del.Serial {
		t.Fatalf("second delete: %+v dup %v, %v", again, dup, err)
	}
	got := readAnnotations(t, s, "a", "chat", ms)
	if len(got) != 2 || got[1].Serial != del.Serial {
		t.Fatalf("after deletes: %+v", got)
	}
	// The next annotation's serial follows the delete's: a duplicate takes none.
	next := publishAnn(t, s, "a", "chat", annotation(ms, "reaction:total.v1", "", ""))
	if a, _ := protocol.ParseAnnotationSerial(next.Serial); a != 3 {
		t.Fatalf("serial after a duplicate delete: %s", next.Serial)
	}
	for name, target := range map[string]string{"a delete": del.Serial, "unknown": protocol.FormatAnnotationSerial(99), "bad": "nope"} {
		if _, _, err := s.DeleteAnnotation(ctx, "a", "chat", ms, target, 1, allow); !errors.Is(err, annotations.ErrNotFound) {
			t.Fatalf("delete %s: %v", name, err)
		}
	}
	if _, _, err := s.DeleteAnnotation(ctx, "a", "chat", other.Mutable.MessageSerial, next.Serial, 1, allow); !errors.Is(err, annotations.ErrNotFound) {
		t.Fatalf("delete through another message: %v", err)
	}
}

func testAnnotationUnknown(t *testing.T, s AnnotationStore) {
	a := annotation("nope", "reaction:total.v1", "", "")
	if err := s.PublishAnnotation(ctx, "a", "chat", &a); !errors.Is(err, channels.ErrMessageNotFound) {
		t.Fatalf("publish on an unknown channel: %v", err)
	}
	create(t, s, "a", "chat", `"hi"`)
	if err := s.PublishAnnotation(ctx, "a", "chat", &a); !errors.Is(err, channels.ErrMessageNotFound) {
		t.Fatalf("publish on an unknown message: %v", err)
	}
	if _, _, err := s.ReadAnnotations(ctx, "a", "chat", "nope", annotations.Query{Limit: 5}); !errors.Is(err, channels.ErrMessageNotFound) {
		t.Fatalf("read an unknown message: %v", err)
	}
	if _, _, err := s.DeleteAnnotation(ctx, "a", "chat", "nope", protocol.FormatAnnotationSerial(1), 1,
		func(protocol.Annotation) error { return nil }); !errors.Is(err, channels.ErrMessageNotFound) {
		t.Fatalf("delete on an unknown message: %v", err)
	}
}

// testAnnotationConcurrent publishes and deletes through a and b at once: every serial is
// distinct, the events read back in serial order, every delete follows its create, and the
// summary is what the writes make.
func testAnnotationConcurrent(t *testing.T, a, b AnnotationStore) {
	m := create(t, a, "a", "live", `"hi"`)
	ms := m.Mutable.MessageSerial
	const perWriter = 40
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w, s := range []AnnotationStore{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				ann := annotation(ms, "reaction:distinct.v1", fmt.Sprintf("e%d", i%3), fmt.Sprintf("w%d-%d", w, i))
				if err := s.PublishAnnotation(ctx, "a", "live", &ann); err != nil {
					errs <- err
					return
				}
				if i%4 == 0 {
					if _, _, err := s.DeleteAnnotation(ctx, "a", "live", ms, ann.Serial, 1, func(protocol.Annotation) error { return nil }); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := readAnnotations(t, b, "a", "live", ms)
	if len(got) != 4*perWriter+4*perWriter/4 {
		t.Fatalf("%d events", len(got))
	}
	created := map[string]bool{}
	for i, e := range got {
		if i > 0 && got[i-1].Serial >= e.Serial {
			t.Fatalf("events out of order at %d: %s then %s", i, got[i-1].Serial, e.Serial)
		}
		switch e.Action {
		case protocol.AnnotationCreate:
			created[e.ID] = true
		case protocol.AnnotationDelete:
			if !created[e.ID] {
				t.Fatalf("delete of %s before its create", e.ID)
			}
		}
	}
	sum := protocol.Summarize(got)
	total := 0
	var names map[string]struct {
		Total int `json:"total"`
	}
	if len(sum) != 1 || json.Unmarshal(sum[0].Summary, &names) != nil {
		t.Fatalf("summary %s", sum)
	}
	for _, n := range names {
		total += n.Total
	}
	if total != 4*perWriter-4*perWriter/4 {
		t.Fatalf("summary counts %d clients, want %d", total, 4*perWriter-4*perWriter/4)
	}
}

func testAnnotatedMessages(t *testing.T, s AnnotationStore) {
	if got, err := s.AnnotatedMessages(ctx, "a", "none", 5); err != nil || len(got) != 0 {
		t.Fatalf("unknown channel: %v, %v", got, err)
	}
	var msgs []string
	for i := 0; i < 4; i++ {
		msgs = append(msgs, create(t, s, "a", "feed", fmt.Sprintf(`"m%d"`, i)).Mutable.MessageSerial)
	}
	// Annotated in the order 2, 0, 3, 0: most recently annotated first is 0, 3, 2; 1 has none.
	for _, i := range []int{2, 0, 3, 0} {
		publishAnn(t, s, "a", "feed", annotation(msgs[i], "r:total.v1", "", ""))
	}
	got, err := s.AnnotatedMessages(ctx, "a", "feed", 10)
	if err != nil || fmt.Sprint(got) != fmt.Sprint([]string{msgs[0], msgs[3], msgs[2]}) {
		t.Fatalf("annotated messages %v, %v; want %v", got, err, []string{msgs[0], msgs[3], msgs[2]})
	}
	if got, err := s.AnnotatedMessages(ctx, "a", "feed", 2); err != nil || len(got) != 2 || got[0] != msgs[0] {
		t.Fatalf("limit 2: %v, %v", got, err)
	}
}
