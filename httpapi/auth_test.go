package httpapi

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"github.com/pushwire/pushwire/internal/testkit"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// TestSignature covers every outcome of the signature middleware (spec http-api §1).
func TestSignature(t *testing.T) {
	const (
		eventsPath   = "/apps/app-id/events"
		channelsPath = "/apps/app-id/channels"
	)
	ev := []byte(`{"name":"e","channel":"c","data":"x"}`)
	md5hex := func(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }
	type req struct {
		method, url string
		body        []byte
	}
	cases := []struct {
		name   string
		build  func(e *env, now time.Time) req
		status int
		code   string // "" for a 200
	}{
		{"valid POST", func(e *env, now time.Time) req {
			return req{"POST", signedURL(e.ts, "POST", eventsPath, nil, ev, testSecret, now), ev}
		}, 200, ""},
		{"valid GET", func(e *env, now time.Time) req {
			return req{"GET", signedURL(e.ts, "GET", channelsPath, nil, nil, testSecret, now), nil}
		}, 200, ""},
		{"no query", func(e *env, _ time.Time) req { return req{"GET", e.ts.URL + channelsPath, nil} }, 400, "invalid_input"},
		{"empty query", func(e *env, _ time.Time) req { return req{"GET", e.ts.URL + channelsPath + "?&", nil} }, 400, "invalid_input"},
		{"no auth parameters", func(e *env, _ time.Time) req {
			return req{"GET", e.ts.URL + channelsPath + "?info=user_count", nil}
		}, 400, "invalid_input"},
		{"malformed escape", func(e *env, now time.Time) req {
			return req{"GET", signedURL(e.ts, "GET", channelsPath, nil, nil, testSecret, now) + "&x=%zz", nil}
		}, 400, "invalid_input"},
		{"duplicate auth_key", func(e *env, now time.Time) req {
			return req{"GET", signedURL(e.ts, "GET", channelsPath, nil, nil, testSecret, now) + "&auth_key=app-key", nil}
		}, 400, "invalid_input"},
		{"unknown key", func(e *env, now time.Time) req {
			return req{"GET", e.ts.URL + channelsPath + "?" + protocol.SignAPIRequest("nope", testSecret, "GET", channelsPath, nil, nil, now), nil}
		}, 404, "app_not_found"},
		{"key of another app", func(e *env, now time.Time) req {
			return req{"GET", signedURL(e.ts, "GET", "/apps/other-app/channels", nil, nil, testSecret, now), nil}
		}, 401, "auth_failed"},
		{"timestamp missing", func(e *env, now time.Time) req {
			u := signedURL(e.ts, "GET", channelsPath, nil, nil, testSecret, now)
			return req{"GET", strings.Replace(u, "auth_timestamp=", "auth_timestamp_x=", 1), nil}
		}, 401, "auth_failed"},
		{"timestamp not a number", func(e *env, now time.Time) req {
			u := signedURL(e.ts, "GET", channelsPath, nil, nil, testSecret, now)
			return req{"GET", strings.Replace(u, "auth_timestamp=", "auth_timestamp=x", 1), nil}
		}, 401, "auth_failed"},
		{"timestamp 599 s old", func(e *env, now time.Time) req {
			return req{"GET", signedURL(e.ts, "GET", channelsPath, nil, nil, testSecret, now.Add(-599*time.Second)), nil}
		}, 200, ""},
		{"timestamp expired", func(e *env, now time.Time) req {
			return req{"POST", signedURL(e.ts, "POST", eventsPath, nil, ev, testSecret, now.Add(-601*time.Second)), ev}
		}, 401, "auth_failed"},
		{"timestamp in the future", func(e *env, now time.Time) req {
			return req{"GET", signedURL(e.ts, "GET", channelsPath, nil, nil, testSecret, now.Add(601*time.Second)), nil}
		}, 401, "auth_failed"},
		{"body_md5 of another body", func(e *env, now time.Time) req {
			return req{"POST", signedURL(e.ts, "POST", eventsPath, nil, []byte("{}"), testSecret, now), ev}
		}, 401, "auth_failed"},
		{"body_md5 uppercase", func(e *env, now time.Time) req {
			u := signedURL(e.ts, "POST", eventsPath, nil, ev, testSecret, now)
			return req{"POST", strings.Replace(u, md5hex(ev), strings.ToUpper(md5hex(ev)), 1), ev}
		}, 401, "auth_failed"},
		{"body_md5 missing on POST", func(e *env, now time.Time) req {
			return req{"POST", signedURL(e.ts, "POST", eventsPath, nil, nil, testSecret, now), ev}
		}, 401, "auth_failed"},
		{"body_md5 on GET", func(e *env, now time.Time) req {
			return req{"GET", signedURL(e.ts, "GET", channelsPath, nil, []byte{}, testSecret, now), nil}
		}, 401, "auth_failed"},
		{"wrong secret", func(e *env, now time.Time) req {
			return req{"POST", signedURL(e.ts, "POST", eventsPath, nil, ev, "wrong", now), ev}
		}, 401, "auth_failed"},
		{"signature uppercase", func(e *env, now time.Time) req {
			u, _ := url.Parse(signedURL(e.ts, "GET", channelsPath, nil, nil, testSecret, now))
			q := u.Query()
			q.Set("auth_signature", strings.ToUpper(q.Get("auth_signature")))
			u.RawQuery = q.Encode()
			return req{"GET", u.String(), nil}
		}, 401, "auth_failed"},
		{"parameter added after signing", func(e *env, now time.Time) req {
			return req{"GET", signedURL(e.ts, "GET", channelsPath, nil, nil, testSecret, now) + "&filter_by_prefix=presence-", nil}
		}, 401, "auth_failed"},
		{"signed for another method", func(e *env, now time.Time) req {
			return req{"GET", signedURL(e.ts, "POST", channelsPath, nil, nil, testSecret, now), nil}
		}, 401, "auth_failed"},
		{"signed for the decoded path", func(e *env, now time.Time) req {
			// The path is signed raw: %2D is not the same as '-'.
			return req{"GET", e.ts.URL + "/apps/app-id/channels/my%2Dchannel?" +
				protocol.SignAPIRequest(testKey, testSecret, "GET", "/apps/app-id/channels/my-channel", nil, nil, now), nil}
		}, 401, "auth_failed"},
		{"signed for the raw path", func(e *env, now time.Time) req {
			p := "/apps/app-id/channels/my%2Dchannel"
			return req{"GET", e.ts.URL + p + "?" + protocol.SignAPIRequest(testKey, testSecret, "GET", p, nil, nil, now), nil}
		}, 200, ""},
		{"plus is a space", func(e *env, now time.Time) req {
			// SignAPIRequest signs "x=a b" and sends x=a+b.
			return req{"GET", signedURL(e.ts, "GET", channelsPath, url.Values{"x": {"a b"}}, nil, testSecret, now), nil}
		}, 200, ""},
		{"uppercase parameter key", func(e *env, now time.Time) req {
			u := signedURL(e.ts, "GET", channelsPath, url.Values{"info": {"subscription_count"}}, nil, testSecret, now)
			return req{"GET", strings.Replace(u, "info=", "INFO=", 1), nil}
		}, 200, ""},
		{"SDK-style unescaped query", func(e *env, now time.Time) req {
			u := signedURL(e.ts, "GET", channelsPath, url.Values{"info": {"subscription_count"}, "filter_by_prefix": {"presence-"}}, nil, testSecret, now)
			raw, _ := url.QueryUnescape(u)
			return req{"GET", raw, nil}
		}, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
			e := newEnv(t, Options{Now: clock.Now}, nil)
			rq := tc.build(e, clock.Now())
			resp, body := do(t, rq.method, rq.url, rq.body)
			if tc.code == "" {
				if resp.StatusCode != 200 {
					t.Fatalf("got %d %s, want 200", resp.StatusCode, body)
				}
				return
			}
			wantError(t, resp, body, tc.status, tc.code)
		})
	}
}

// TestSignedParamsAreTheOnesUsed checks that a handler reads the parameter value the
// signature covers: with a duplicated key that is the last one (a prepended value is not
// signed and must not be used).
func TestSignedParamsAreTheOnesUsed(t *testing.T) {
	e := newEnv(t, Options{}, nil)
	subscribe(t, e.hub, "public-a", "")
	signed := signedURL(e.ts, "GET", "/apps/app-id/channels", url.Values{"info": {"subscription_count"}}, nil, testSecret, time.Now())
	u := strings.Replace(signed, "?", "?info=user_count&", 1)
	resp, body := do(t, "GET", u, nil)
	wantOK(t, resp, body, `{"channels":{"public-a":{"subscription_count":1}}}`)
}

// TestBodyLimits covers reading the body: the MaxBodyBytes limit (413, by Content-Length
// or by counting a chunked body) and a body shorter than its Content-Length (400).
func TestBodyLimits(t *testing.T) {
	e := newEnv(t, Options{MaxBodyBytes: 70}, nil)
	path := "/apps/app-id/events"
	fits := []byte(`{"name":"e","channel":"c","data":"` + strings.Repeat("x", 30) + `"}`)
	over := []byte(`{"name":"e","channel":"c","data":"` + strings.Repeat("x", 40) + `"}`)
	cases := []struct {
		name    string
		body    []byte
		chunked bool
		status  int
		code    string
	}{
		{"fits", fits, false, 200, ""},
		{"fits chunked", fits, true, 200, ""},
		{"over the limit", over, false, 413, "payload_too_large"},
		{"over the limit chunked", over, true, 413, "payload_too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r io.Reader = strings.NewReader(string(tc.body))
			if tc.chunked {
				r = io.MultiReader(r) // unknown length: sent chunked
			}
			req, err := http.NewRequest("POST", signedURL(e.ts, "POST", path, nil, tc.body, testSecret, time.Now()), r)
			if err != nil {
				t.Fatal(err)
			}
			if tc.chunked != (req.ContentLength <= 0) {
				t.Fatalf("ContentLength %d", req.ContentLength)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if tc.code == "" {
				wantOK(t, resp, body, `{}`)
				return
			}
			wantError(t, resp, body, tc.status, tc.code)
		})
	}

	t.Run("truncated", func(t *testing.T) {
		u, err := url.Parse(signedURL(e.ts, "POST", path, nil, fits, testSecret, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// Content-Length promises the whole body; only half arrives before the client stops
		// sending.
		_, err = io.WriteString(conn, "POST "+u.RequestURI()+" HTTP/1.1\r\nHost: "+u.Host+"\r\nContent-Type: application/json\r\n"+
			"Content-Length: "+strconv.Itoa(len(fits))+"\r\n\r\n"+string(fits[:len(fits)/2]))
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		wantError(t, resp, body, 400, "invalid_input")
	})
}

// TestAppMismatch checks, with two apps on one hub, that a key opens only its own app and
// that each app's own secret is the one checked.
func TestAppMismatch(t *testing.T) {
	first := config.DefaultApp()
	second := config.App{ID: "app-2", Key: "key-2", Secret: "secret-2"}
	first.ApplyDefaults()
	second.ApplyDefaults()
	ts := httptest.NewServer(New(channels.New([]config.App{first, second}, channels.Options{}), Options{}))
	defer ts.Close()
	now := time.Now()
	cases := []struct {
		name, key, secret, path string
		status                  int
	}{
		{"own app", "key-2", "secret-2", "/apps/app-2/channels", 200},
		{"other app's id", "key-2", "secret-2", "/apps/app-id/channels", 401},
		{"other app's secret", "key-2", testSecret, "/apps/app-2/channels", 401},
		{"first app", testKey, testSecret, "/apps/app-id/channels", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, "GET", ts.URL+tc.path+"?"+protocol.SignAPIRequest(tc.key, tc.secret, "GET", tc.path, nil, nil, now), nil)
			if tc.status == 200 {
				wantOK(t, resp, body, `{"channels":{}}`)
				return
			}
			wantError(t, resp, body, tc.status, "auth_failed")
		})
	}
}
