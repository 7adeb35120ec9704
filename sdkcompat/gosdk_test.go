package sdkcompat

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	pusher "github.com/pusher/pusher-http-go/v5"
	"golang.org/x/crypto/nacl/secretbox"

	"github.com/pushwire/pushwire/internal/testkit"
)

// TestGoSDK drives the running binary with the official Go server SDK
// (github.com/pusher/pusher-http-go/v5) and observes deliveries on raw WebSocket clients.
func TestGoSDK(t *testing.T) {
	t.Parallel()
	srv := testkit.Start(t, testkit.Options{Port: -1})
	client := func() *pusher.Client {
		return &pusher.Client{
			AppID:      testkit.AppID,
			Key:        testkit.AppKey,
			Secret:     testkit.AppSecret,
			Host:       srv.Addr,
			HTTPClient: &http.Client{Timeout: waitTimeout},
		}
	}
	n := 0
	uniq := func(prefix string) string {
		n++
		return fmt.Sprintf("%s-go%d-%d", prefix, n, time.Now().UnixNano()%1e6)
	}

	t.Run("Trigger", func(t *testing.T) {
		c := dial(t, srv, "sub")
		ch := uniq("orders")
		c.subscribe(ch, "", "")
		if err := client().Trigger(ch, "order-created", map[string]any{"id": 1, "note": "a \"quoted\" é"}); err != nil {
			t.Fatalf("Trigger: %v", err)
		}
		f := c.next("order-created", ch)
		// Byte-for-byte what pusher-js expects: data is the SDK's JSON, double-encoded.
		want := `{"event":"order-created","channel":"` + ch + `","data":"{\"id\":1,\"note\":\"a \\\"quoted\\\" é\"}"}`
		if string(f.raw) != want {
			t.Fatalf("frame\n got %s\nwant %s", f.raw, want)
		}
		// A plain string payload is delivered as that string.
		if err := client().Trigger(ch, "note", "plain text"); err != nil {
			t.Fatal(err)
		}
		if got := c.next("note", ch).dataString(t); got != "plain text" {
			t.Fatalf("data %q", got)
		}
	})

	t.Run("TriggerMulti", func(t *testing.T) {
		c := dial(t, srv, "sub")
		a, b := uniq("multi-a"), uniq("multi-b")
		c.subscribe(a, "", "")
		c.subscribe(b, "", "")
		if err := client().TriggerMulti([]string{a, b}, "fan", map[string]int{"n": 2}); err != nil {
			t.Fatalf("TriggerMulti: %v", err)
		}
		for _, ch := range []string{a, b} {
			if got := c.next("fan", ch).dataString(t); got != `{"n":2}` {
				t.Fatalf("%s data %s", ch, got)
			}
		}
	})

	t.Run("TriggerWithParams/socket_id exclusion", func(t *testing.T) {
		excluded, other := dial(t, srv, "excluded"), dial(t, srv, "other")
		ch := uniq("exclusive")
		excluded.subscribe(ch, "", "")
		other.subscribe(ch, "", "")
		sid := excluded.socketID
		if _, err := client().TriggerWithParams(ch, "ev", "x", pusher.TriggerParams{SocketID: &sid}); err != nil {
			t.Fatalf("TriggerWithParams: %v", err)
		}
		other.next("ev", ch)
		excluded.none("ev", ch)
		// TriggerMultiWithParams excludes on every channel.
		ch2 := uniq("exclusive-2")
		excluded.subscribe(ch2, "", "")
		other.subscribe(ch2, "", "")
		if _, err := client().TriggerMultiWithParams([]string{ch, ch2}, "ev2", "y", pusher.TriggerParams{SocketID: &sid}); err != nil {
			t.Fatal(err)
		}
		other.next("ev2", ch)
		other.next("ev2", ch2)
		excluded.none("ev2", "")
	})

	t.Run("TriggerWithParams/info counts", func(t *testing.T) {
		room := uniq("presence-info")
		sdk := client()
		for i, user := range []string{"u1", "u1", "u2"} {
			c := dial(t, srv, fmt.Sprintf("member%d", i))
			auth, data := presenceAuth(t, sdk, c, room, user)
			c.subscribe(room, auth, data)
		}
		info := "user_count,subscription_count"
		res, err := sdk.TriggerWithParams(room, "ev", "{}", pusher.TriggerParams{Info: &info})
		if err != nil {
			t.Fatalf("TriggerWithParams: %v", err)
		}
		item, ok := res.Channels[room]
		if !ok || item.UserCount == nil || item.SubscriptionCount == nil {
			t.Fatalf("response %+v lacks counts for %s", res, room)
		}
		if *item.UserCount != 2 || *item.SubscriptionCount != 3 {
			t.Fatalf("user_count %d subscription_count %d, want 2 and 3", *item.UserCount, *item.SubscriptionCount)
		}
	})

	t.Run("TriggerBatch", func(t *testing.T) {
		c := dial(t, srv, "sub")
		a, b := uniq("batch-a"), uniq("batch-b")
		c.subscribe(a, "", "")
		c.subscribe(b, "", "")
		info := "subscription_count"
		res, err := client().TriggerBatch([]pusher.Event{
			{Channel: a, Name: "one", Data: map[string]int{"i": 1}},
			{Channel: b, Name: "two", Data: "second", Info: &info},
		})
		if err != nil {
			t.Fatalf("TriggerBatch: %v", err)
		}
		if got := c.next("one", a).dataString(t); got != `{"i":1}` {
			t.Fatalf("one: %s", got)
		}
		if got := c.next("two", b).dataString(t); got != "second" {
			t.Fatalf("two: %s", got)
		}
		if len(res.Batch) != 2 || res.Batch[1].SubscriptionCount == nil || *res.Batch[1].SubscriptionCount != 1 {
			t.Fatalf("batch response %s", mustJSON(res))
		}
	})

	t.Run("Channels", func(t *testing.T) {
		sdk := client()
		tag := uniq("list")
		pub, room := tag+"-pub", "presence-"+tag
		a, b := dial(t, srv, "a"), dial(t, srv, "b")
		a.subscribe(pub, "", "")
		for _, c := range []*wsClient{a, b} {
			auth, data := presenceAuth(t, sdk, c, room, "user-"+c.name)
			c.subscribe(room, auth, data)
		}
		prefix := tag
		list, err := sdk.Channels(pusher.ChannelsParams{FilterByPrefix: &prefix})
		if err != nil {
			t.Fatalf("Channels: %v", err)
		}
		if got := keys(list.Channels); !slices.Equal(got, []string{pub}) {
			t.Fatalf("filter_by_prefix=%s: channels %v, want [%s]", prefix, got, pub)
		}
		presencePrefix, info := "presence-"+tag, "user_count"
		list, err = sdk.Channels(pusher.ChannelsParams{FilterByPrefix: &presencePrefix, Info: &info})
		if err != nil {
			t.Fatalf("Channels(info=user_count): %v", err)
		}
		if got := keys(list.Channels); !slices.Equal(got, []string{room}) || list.Channels[room].UserCount != 2 {
			t.Fatalf("presence listing %s, want %s with user_count 2", mustJSON(list), room)
		}
		all, err := sdk.Channels(pusher.ChannelsParams{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := all.Channels[pub]; !ok {
			t.Fatalf("unfiltered listing lacks %s: %s", pub, mustJSON(all))
		}
	})

	t.Run("Channel", func(t *testing.T) {
		sdk := client()
		room := uniq("presence-one")
		for i, user := range []string{"x", "y", "x"} {
			c := dial(t, srv, fmt.Sprintf("c%d", i))
			auth, data := presenceAuth(t, sdk, c, room, user)
			c.subscribe(room, auth, data)
		}
		info := "user_count,subscription_count"
		ch, err := sdk.Channel(room, pusher.ChannelParams{Info: &info})
		if err != nil {
			t.Fatalf("Channel: %v", err)
		}
		if !ch.Occupied || ch.UserCount != 2 || ch.SubscriptionCount != 3 {
			t.Fatalf("channel %+v, want occupied, 2 users, 3 subscriptions", ch)
		}
		empty, err := sdk.Channel(uniq("vacant"), pusher.ChannelParams{})
		if err != nil {
			t.Fatalf("Channel(vacant): %v", err)
		}
		if empty.Occupied {
			t.Fatalf("vacant channel reported occupied: %+v", empty)
		}
	})

	t.Run("GetChannelUsers", func(t *testing.T) {
		sdk := client()
		room := uniq("presence-users")
		for i, user := range []string{"alice", "bob", "alice"} {
			c := dial(t, srv, fmt.Sprintf("c%d", i))
			auth, data := presenceAuth(t, sdk, c, room, user)
			c.subscribe(room, auth, data)
		}
		users, err := sdk.GetChannelUsers(room)
		if err != nil {
			t.Fatalf("GetChannelUsers: %v", err)
		}
		var ids []string
		for _, u := range users.List {
			ids = append(ids, u.ID)
		}
		sort.Strings(ids)
		if !slices.Equal(ids, []string{"alice", "bob"}) {
			t.Fatalf("users %v, want [alice bob]", ids)
		}
	})

	t.Run("AuthorizePrivateChannel", func(t *testing.T) {
		sdk := client()
		a, b := dial(t, srv, "a"), dial(t, srv, "b")
		ch := uniq("private-chat")
		for _, c := range []*wsClient{a, b} {
			resp, err := sdk.AuthorizePrivateChannel(authParams(c, ch))
			if err != nil {
				t.Fatalf("AuthorizePrivateChannel: %v", err)
			}
			var auth struct {
				Auth string `json:"auth"`
			}
			if err := json.Unmarshal(resp, &auth); err != nil {
				t.Fatal(err)
			}
			ack := c.subscribe(ch, auth.Auth, "")
			if ack.dataString(t) != "{}" {
				t.Fatalf("ack %s", ack.raw)
			}
		}
		// Client event between the two, not echoed.
		a.send(map[string]any{"event": "client-typing", "channel": ch, "data": map[string]bool{"typing": true}})
		f := b.next("client-typing", ch)
		if string(f.Data) != `{"typing":true}` || f.UserID != "" {
			t.Fatalf("client event %s", f.raw)
		}
		a.none("client-typing", ch)
		// A server trigger reaches both.
		if err := sdk.Trigger(ch, "server-ev", "hi"); err != nil {
			t.Fatal(err)
		}
		a.next("server-ev", ch)
		b.next("server-ev", ch)
	})

	t.Run("AuthorizePrivateChannel/wrong secret", func(t *testing.T) {
		bad := client()
		bad.Secret = "not-the-secret"
		c := dial(t, srv, "c")
		ch := uniq("private-locked")
		resp, err := bad.AuthorizePrivateChannel(authParams(c, ch))
		if err != nil {
			t.Fatal(err)
		}
		var auth struct {
			Auth string `json:"auth"`
		}
		_ = json.Unmarshal(resp, &auth)
		c.sendSubscribe(ch, auth.Auth, "")
		e := c.next("pusher:error", "")
		var ed struct {
			Code int `json:"code"`
		}
		e.dataObject(t, &ed)
		if ed.Code != 4009 {
			t.Fatalf("error %s, want code 4009", e.raw)
		}
		se := c.next("pusher:subscription_error", ch)
		var sd struct {
			Status int `json:"status"`
		}
		se.dataObject(t, &sd)
		if sd.Status != 401 {
			t.Fatalf("subscription_error %s, want status 401", se.raw)
		}
		// The connection stays usable.
		c.subscribe(uniq("public-after-error"), "", "")
	})

	t.Run("AuthorizePresenceChannel", func(t *testing.T) {
		sdk := client()
		room := uniq("presence-room")
		a := dial(t, srv, "a")
		resp, err := sdk.AuthorizePresenceChannel(authParams(a, room), pusher.MemberData{UserID: "10", UserInfo: map[string]string{"name": "Ten"}})
		if err != nil {
			t.Fatalf("AuthorizePresenceChannel: %v", err)
		}
		var auth struct {
			Auth        string `json:"auth"`
			ChannelData string `json:"channel_data"`
		}
		if err := json.Unmarshal(resp, &auth); err != nil {
			t.Fatal(err)
		}
		ack := a.subscribe(room, auth.Auth, auth.ChannelData)
		want := `{"presence":{"ids":["10"],"hash":{"10":{"name":"Ten"}},"count":1}}`
		if got := ack.dataString(t); got != want {
			t.Fatalf("presence ack data\n got %s\nwant %s", got, want)
		}

		b := dial(t, srv, "b")
		authB, dataB := presenceAuth(t, sdk, b, room, "11")
		b.subscribe(room, authB, dataB)
		added := a.next("pusher_internal:member_added", room)
		if got := added.dataString(t); got != `{"user_id":"11","user_info":{}}` && got != `{"user_id":"11"}` {
			t.Fatalf("member_added %s", added.raw)
		}
		// Client events on presence carry the sender's user_id.
		b.send(map[string]any{"event": "client-hi", "channel": room, "data": map[string]int{"n": 1}})
		if f := a.next("client-hi", room); f.UserID != "11" {
			t.Fatalf("presence client event without user_id 11: %s", f.raw)
		}
		b.close()
		removed := a.next("pusher_internal:member_removed", room)
		if got := removed.dataString(t); got != `{"user_id":"11"}` {
			t.Fatalf("member_removed %s", removed.raw)
		}
	})

	t.Run("encrypted channel", func(t *testing.T) {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		sdk := client()
		sdk.EncryptionMasterKeyBase64 = base64.StdEncoding.EncodeToString(key)
		c := dial(t, srv, "c")
		ch := uniq("private-encrypted-vault")
		resp, err := sdk.AuthorizePrivateChannel(authParams(c, ch))
		if err != nil {
			t.Fatalf("AuthorizePrivateChannel(encrypted): %v", err)
		}
		var auth struct {
			Auth         string `json:"auth"`
			SharedSecret string `json:"shared_secret"`
		}
		if err := json.Unmarshal(resp, &auth); err != nil || auth.SharedSecret == "" {
			t.Fatalf("auth response %s: %v", resp, err)
		}
		c.subscribe(ch, auth.Auth, "")
		if err := sdk.Trigger(ch, "secret", map[string]string{"msg": "top secret"}); err != nil {
			t.Fatalf("Trigger(encrypted): %v", err)
		}
		f := c.next("secret", ch)
		if bytes.Contains(f.raw, []byte("top secret")) {
			t.Fatalf("plaintext on the wire: %s", f.raw)
		}
		var box struct {
			Nonce      string `json:"nonce"`
			Ciphertext string `json:"ciphertext"`
		}
		f.dataObject(t, &box)
		if got := decrypt(t, auth.SharedSecret, box.Nonce, box.Ciphertext); got != `{"msg":"top secret"}` {
			t.Fatalf("decrypted %q", got)
		}
	})

	t.Run("AuthenticateUser and SendToUser", func(t *testing.T) {
		sdk := client()
		user := uniq("user")
		a, b, other := dial(t, srv, "a"), dial(t, srv, "b"), dial(t, srv, "other")
		signIn(t, sdk, a, map[string]any{"id": user, "name": "Go"})
		signIn(t, sdk, b, map[string]any{"id": user})
		signIn(t, sdk, other, map[string]any{"id": uniq("someone-else")})
		if err := sdk.SendToUser(user, "notice", map[string]string{"hello": "you"}); err != nil {
			t.Fatalf("SendToUser: %v", err)
		}
		for _, c := range []*wsClient{a, b} {
			f := c.next("notice", "#server-to-user-"+user)
			if got := f.dataString(t); got != `{"hello":"you"}` {
				t.Fatalf("%s: notice data %s", c.name, got)
			}
		}
		other.none("notice", "")
	})

	t.Run("AuthenticateUser/wrong secret", func(t *testing.T) {
		bad := client()
		bad.Secret = "nope"
		c := dial(t, srv, "c")
		resp, err := bad.AuthenticateUser([]byte("socket_id="+c.socketID), map[string]any{"id": "eve"})
		if err != nil {
			t.Fatal(err)
		}
		var auth struct {
			Auth     string `json:"auth"`
			UserData string `json:"user_data"`
		}
		_ = json.Unmarshal(resp, &auth)
		c.send(map[string]any{"event": "pusher:signin", "data": auth})
		e := c.next("pusher:error", "")
		var ed struct {
			Code int `json:"code"`
		}
		e.dataObject(t, &ed)
		if ed.Code != 4009 {
			t.Fatalf("error %s, want 4009", e.raw)
		}
		c.none("pusher:signin_success", "")
	})

	t.Run("watchlist", func(t *testing.T) {
		sdk := client()
		watched := uniq("watched")
		w := dial(t, srv, "watcher")
		signIn(t, sdk, w, map[string]any{"id": uniq("watcher"), "watchlist": []string{watched}})
		if got := watchlistEvent(t, w); got != "offline:"+watched {
			t.Fatalf("initial watchlist state %s", got)
		}
		u := dial(t, srv, "watched")
		signIn(t, sdk, u, map[string]any{"id": watched})
		if got := watchlistEvent(t, w); got != "online:"+watched {
			t.Fatalf("after sign-in %s", got)
		}
		u.close()
		if got := watchlistEvent(t, w); got != "offline:"+watched {
			t.Fatalf("after disconnect %s", got)
		}
	})

	t.Run("TerminateUserConnections", func(t *testing.T) {
		sdk := client()
		user := uniq("doomed")
		a, b, bystander := dial(t, srv, "a"), dial(t, srv, "b"), dial(t, srv, "bystander")
		signIn(t, sdk, a, map[string]any{"id": user})
		signIn(t, sdk, b, map[string]any{"id": user})
		signIn(t, sdk, bystander, map[string]any{"id": uniq("bystander")})
		// pusher-http-go v5.1.1 has no TerminateUserConnections: sign the documented
		// POST /apps/{id}/users/{user}/terminate_connections exactly as the SDKs do.
		status, body := signedRequest(t, srv, testkit.AppSecret, "POST", "/apps/"+testkit.AppID+"/users/"+user+"/terminate_connections", []byte("{}"))
		if status != http.StatusOK {
			t.Fatalf("terminate_connections: %d %s", status, body)
		}
		for _, c := range []*wsClient{a, b} {
			e := c.next("pusher:error", "")
			var ed struct {
				Code int `json:"code"`
			}
			e.dataObject(t, &ed)
			if ed.Code != 4009 {
				t.Fatalf("%s: error %s, want 4009", c.name, e.raw)
			}
			if code := c.waitClosed(); code != 4009 {
				t.Fatalf("%s: close code %d, want 4009", c.name, code)
			}
		}
		bystander.send(map[string]any{"event": "pusher:ping", "data": map[string]any{}})
		bystander.next("pusher:pong", "")
	})

	t.Run("wrong secret gets 401", func(t *testing.T) {
		bad := client()
		bad.Secret = "wrong"
		_, err := bad.Channels(pusher.ChannelsParams{})
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("Channels with a wrong secret: %v, want a 401", err)
		}
		err = bad.Trigger(uniq("x"), "ev", "data")
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("Trigger with a wrong secret: %v, want a 401", err)
		}
		status, body := signedRequest(t, srv, "wrong", "GET", "/apps/"+testkit.AppID+"/channels", nil)
		if status != http.StatusUnauthorized {
			t.Fatalf("hand-signed wrong secret: %d %s", status, body)
		}
	})
}

// authParams is the form body pusher-js posts to an auth endpoint.
func authParams(c *wsClient, channel string) []byte {
	return []byte(url.Values{"socket_id": {c.socketID}, "channel_name": {channel}}.Encode())
}

// presenceAuth signs a presence subscription for user with the Go SDK.
func presenceAuth(t *testing.T, sdk *pusher.Client, c *wsClient, room, user string) (auth, channelData string) {
	t.Helper()
	resp, err := sdk.AuthorizePresenceChannel(authParams(c, room), pusher.MemberData{UserID: user})
	if err != nil {
		t.Fatalf("AuthorizePresenceChannel: %v", err)
	}
	var r struct {
		Auth        string `json:"auth"`
		ChannelData string `json:"channel_data"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		t.Fatal(err)
	}
	return r.Auth, r.ChannelData
}

// signIn signs the connection in with AuthenticateUser, checks signin_success and
// subscribes to the user's #server-to-user channel like pusher-js does.
func signIn(t *testing.T, sdk *pusher.Client, c *wsClient, userData map[string]any) {
	t.Helper()
	resp, err := sdk.AuthenticateUser([]byte("socket_id="+c.socketID), userData)
	if err != nil {
		t.Fatalf("AuthenticateUser: %v", err)
	}
	var auth struct {
		Auth     string `json:"auth"`
		UserData string `json:"user_data"`
	}
	if err := json.Unmarshal(resp, &auth); err != nil {
		t.Fatal(err)
	}
	c.send(map[string]any{"event": "pusher:signin", "data": auth})
	f := c.next("pusher:signin_success", "")
	var d struct {
		UserData string `json:"user_data"`
	}
	f.dataObject(t, &d)
	if d.UserData != auth.UserData {
		t.Fatalf("signin_success user_data %q, want %q", d.UserData, auth.UserData)
	}
	c.subscribe("#server-to-user-"+userData["id"].(string), "", "")
}

// watchlistEvent reads the next watchlist frame as "name:id,id".
func watchlistEvent(t *testing.T, c *wsClient) string {
	t.Helper()
	f := c.next("pusher_internal:watchlist_events", "")
	var d struct {
		Events []struct {
			Name    string   `json:"name"`
			UserIDs []string `json:"user_ids"`
		} `json:"events"`
	}
	f.dataObject(t, &d)
	if len(d.Events) != 1 {
		t.Fatalf("watchlist frame %s: want one event", f.raw)
	}
	return d.Events[0].Name + ":" + strings.Join(d.Events[0].UserIDs, ",")
}

func decrypt(t *testing.T, sharedSecretB64, nonceB64, ciphertextB64 string) string {
	t.Helper()
	secret, err1 := base64.StdEncoding.DecodeString(sharedSecretB64)
	nonce, err2 := base64.StdEncoding.DecodeString(nonceB64)
	box, err3 := base64.StdEncoding.DecodeString(ciphertextB64)
	if err1 != nil || err2 != nil || err3 != nil || len(secret) != 32 || len(nonce) != 24 {
		t.Fatalf("bad encrypted payload: %v %v %v", err1, err2, err3)
	}
	var k [32]byte
	var n [24]byte
	copy(k[:], secret)
	copy(n[:], nonce)
	plain, ok := secretbox.Open(nil, box, &n, &k)
	if !ok {
		t.Fatal("secretbox.Open failed: ciphertext altered in transit")
	}
	return string(plain)
}

// signedRequest sends a REST request signed like every Pusher server SDK does.
func signedRequest(t *testing.T, srv *testkit.Server, secret, method, path string, body []byte) (int, string) {
	t.Helper()
	q := url.Values{
		"auth_key":       {testkit.AppKey},
		"auth_timestamp": {strconv.FormatInt(time.Now().Unix(), 10)},
		"auth_version":   {"1.0"},
	}
	if body != nil {
		sum := md5.Sum(body)
		q.Set("body_md5", hex.EncodeToString(sum[:]))
	}
	unescaped, _ := url.QueryUnescape(q.Encode())
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(method + "\n" + path + "\n" + unescaped))
	q.Set("auth_signature", hex.EncodeToString(mac.Sum(nil)))
	req, err := http.NewRequest(method, srv.HTTPURL()+path+"?"+q.Encode(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: waitTimeout}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
