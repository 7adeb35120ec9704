package integration

import (
	"sort"
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
)

func testPublish(t *testing.T, s *testkit.Server) {
	frames := []struct {
		name string
		data any
		want string
	}{
		{"DataJSONString", `{"hello":"world"}`, `{"event":"my-event","channel":"test-channel-frames","data":"{\"hello\":\"world\"}"}`},
		{"DataPlainString", "hello", `{"event":"my-event","channel":"test-channel-frames","data":"hello"}`},
		{"DataObject", map[string]string{"hello": "world"}, `{"event":"my-event","channel":"test-channel-frames","data":"{\"hello\":\"world\"}"}`},
		{"DataSpecialCharacters", "<a & b>\n\"q\"", `{"event":"my-event","channel":"test-channel-frames","data":"<a & b>\n\"q\""}`},
	}
	t.Run("Frames", func(t *testing.T) {
		t.Parallel()
		c := connect(t, s)
		c.subscribe(t, "test-channel-frames")
		for _, f := range frames {
			publish(t, s, map[string]any{"name": "my-event", "channel": "test-channel-frames", "data": f.data})
			got := c.next(t)
			if got != f.want {
				t.Errorf("%s: frame\n got: %s\nwant: %s", f.name, got, f.want)
			}
		}
	})

	t.Run("TestChannel", func(t *testing.T) {
		t.Parallel()
		c := connect(t, s)
		c.subscribe(t, "test-channel")
		publish(t, s, map[string]any{"name": "my-event", "channel": "test-channel", "data": `{"hello":"world"}`})
		c.expect(t, `{"event":"my-event","channel":"test-channel","data":"{\"hello\":\"world\"}"}`)
	})

	t.Run("ExcludeSocketID", func(t *testing.T) {
		t.Parallel()
		const ch = "exclude-channel"
		origin, other := connect(t, s), connect(t, s)
		origin.subscribe(t, ch)
		other.subscribe(t, ch)
		publish(t, s, map[string]any{"name": "my-event", "channel": ch, "data": "x", "socket_id": origin.socketID})
		other.expect(t, eventFrame("my-event", ch, "x"))
		origin.ping(t)
		// An invalid socket_id excludes nobody.
		publish(t, s, map[string]any{"name": "my-event", "channel": ch, "data": "y", "socket_id": "not-a-socket"})
		origin.expect(t, eventFrame("my-event", ch, "y"))
		other.expect(t, eventFrame("my-event", ch, "y"))
	})

	t.Run("TwoChannels", func(t *testing.T) {
		t.Parallel()
		both, onlyB := connect(t, s), connect(t, s)
		both.subscribe(t, "multi-a")
		both.subscribe(t, "multi-b")
		onlyB.subscribe(t, "multi-b")
		publish(t, s, map[string]any{"name": "multi", "channels": []string{"multi-a", "multi-b"}, "data": "m"})
		got := []string{both.next(t), both.next(t)}
		sort.Strings(got)
		want := []string{eventFrame("multi", "multi-a", "m"), eventFrame("multi", "multi-b", "m")}
		if got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("frames\n got: %s\nwant: %s", got, want)
		}
		onlyB.expect(t, eventFrame("multi", "multi-b", "m"))
		both.ping(t)
		onlyB.ping(t)
	})

	t.Run("NoSubscriberNoFrame", func(t *testing.T) {
		t.Parallel()
		c := connect(t, s)
		c.subscribe(t, "quiet-channel")
		publish(t, s, map[string]any{"name": "my-event", "channel": "loud-channel", "data": "x"})
		c.ping(t)
	})
}
