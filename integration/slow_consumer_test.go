package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/internal/testkit"
)

// TestSlowConsumer freezes one subscriber (it stops reading, with a tiny TCP receive buffer)
// while many large events are published: the server disconnects it, and a reading
// subscriber of the same channel receives every event, in order.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--write-queue-messages=16", "--write-queue-kb=64", "--write-timeout=2s"}})
	const (
		ch     = "firehose"
		events = 320      // 320 x 16 KB = 5 MB, more than loopback TCP buffers hold
		size   = 16 << 10 // bytes of data per event
	)

	slow := dial(t, s.WSURL(testkit.AppKey), dialOptions{noReader: true, httpClient: smallBufferClient()})
	readNow := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
		defer cancel()
		_, b, err := slow.ws.Read(ctx)
		if err != nil {
			t.Fatalf("slow client read: %v", err)
		}
		return string(b)
	}
	if m := handshakeRE.FindStringSubmatch(readNow()); m == nil {
		t.Fatal("slow client: no handshake")
	}
	slow.send(t, subscribeFrame(ch, "", ""))
	if got := readNow(); got != ackFrame(ch, "{}") {
		t.Fatalf("slow client ack: %s", got)
	}
	// From here on the slow client reads nothing.

	fast := connect(t, s)
	fast.subscribe(t, ch)

	pad := strings.Repeat("x", size)
	payload := func(i int) string { return fmt.Sprintf("%05d:%s", i, pad) }
	start := time.Now()
	// Each event is published once the reading client has the one before, so it is never
	// behind, however slow the machine; the frozen client's backlog grows all the same.
	for i := range events {
		publish(t, s, map[string]any{"name": "big", "channel": ch, "data": payload(i)})
		checkBig(t, ch, i, fast.next(t), payload(i))
	}
	fast.ping(t)
	t.Logf("published %d events of %d KB in %s; the reading client got all of them", events, size>>10, time.Since(start).Round(time.Millisecond))

	// The server lets the frozen client go: it leaves the channel (after its 2s write timeout).
	testkit.WaitFor(t, 25*time.Second, "the slow consumer to be disconnected", func() bool {
		return subscriptionCount(t, s, ch) == 1
	})

	// What the frozen client finds when it reads again: fewer events than published, then
	// the end of the connection (close 4100 if the close frame made it, else a closed socket).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := 0
	var err error
	for {
		var b []byte
		if _, b, err = slow.ws.Read(ctx); err != nil {
			break
		}
		if strings.HasPrefix(string(b), `{"event":"big"`) {
			got++
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("slow client still connected after reading %d events: %v", got, err)
	}
	if code := websocket.CloseStatus(err); code != -1 && code != 4100 {
		t.Fatalf("slow client closed with %d (%v), want 4100 or a dropped socket", code, err)
	}
	if got >= events {
		t.Fatalf("slow client received all %d events, want it cut off", got)
	}
	t.Logf("slow client got %d of %d events, then: %v", got, events, err)
	if !strings.Contains(s.Output(), "slow_consumer") {
		t.Errorf("server log names no slow_consumer close reason:\n%s", s.Output())
	}

	// The reading client is unaffected.
	publish(t, s, map[string]any{"name": "after", "channel": ch, "data": "a"})
	fast.expect(t, eventFrame("after", ch, "a"))
}

func checkBig(t *testing.T, ch string, i int, got, data string) {
	t.Helper()
	if want := eventFrame("big", ch, data); got != want {
		if len(got) > 80 {
			got = got[:80] + "..."
		}
		t.Fatalf("event %d: got %s, want %.80s...", i, got, want)
	}
}

// smallBufferClient dials with a 4 KB TCP receive buffer, so a client that stops reading
// backs the server up quickly.
func smallBufferClient() *http.Client {
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// subscriptionCount asks the REST API how many connections are subscribed to a channel.
func subscriptionCount(t testing.TB, s *testkit.Server, ch string) int {
	t.Helper()
	status, body := apiGet(t, s, "/apps/"+testkit.AppID+"/channels/"+url.PathEscape(ch), url.Values{"info": {"subscription_count"}})
	if status != http.StatusOK {
		t.Fatalf("channel info %s: HTTP %d %s", ch, status, body)
	}
	var info struct {
		SubscriptionCount *int `json:"subscription_count"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil || info.SubscriptionCount == nil {
		t.Fatalf("channel info %s: no subscription_count in %s", ch, body)
	}
	return *info.SubscriptionCount
}
