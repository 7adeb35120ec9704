package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/protocol"
)

// createMessage publishes to a versioned channel and returns the message serial.
func createMessage(t *testing.T, e *env, channel string) string {
	t.Helper()
	resp, body := e.call(t, http.MethodPost, "/apps/app-id/events", nil, []byte(`{"name":"chat.message","channel":"`+channel+`","data":"hi"}`))
	if resp.StatusCode != 200 {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	var out struct {
		Channels map[string]struct {
			MessageSerial string `json:"message_serial"`
		} `json:"channels"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Channels[channel].MessageSerial == "" {
		t.Fatalf("publish answer %s: %v", body, err)
	}
	return out.Channels[channel].MessageSerial
}

// TestAnnotationRoutes: publish, list (paged, filtered), delete and their errors, in
// Sockudo's shapes, over signed requests.
func TestAnnotationRoutes(t *testing.T) {
	e := historyEnv(t)
	msg := createMessage(t, e, "chat")
	base := "/apps/app-id/channels/chat/messages/" + msg + "/annotations"
	var serials []string
	for i, body := range []string{
		`{"type":"reaction:distinct.v1","name":"like","clientId":"alice","data":{"emoji":"👍"}}`,
		`{"type":"reaction:distinct.v1","name":"like","client_id":"bob","count":1}`,
		`{"type":"receipt:flag.v1","clientId":"alice","encoding":"utf-8","data":"seen"}`,
	} {
		resp, b := e.call(t, http.MethodPost, base, nil, []byte(body))
		var out map[string]string
		if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || len(out) != 1 || out["annotationSerial"] == "" {
			t.Fatalf("publish %d: %d %s", i, resp.StatusCode, b)
		}
		serials = append(serials, out["annotationSerial"])
	}
	resp, b := e.call(t, http.MethodGet, base, url.Values{"limit": {"2"}}, nil)
	var page struct {
		Channel       string                   `json:"channel"`
		MessageSerial string                   `json:"messageSerial"`
		Limit         int                      `json:"limit"`
		HasMore       bool                     `json:"hasMore"`
		NextCursor    *string                  `json:"nextCursor"`
		Items         []map[string]interface{} `json:"items"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &page) != nil || page.Channel != "chat" || page.MessageSerial != msg || page.Limit != 2 ||
		!page.HasMore || page.NextCursor == nil || *page.NextCursor != serials[1] || len(page.Items) != 2 {
		t.Fatalf("first page: %d %s", resp.StatusCode, b)
	}
	first := page.Items[0]
	if first["action"] != "annotation.create" || first["id"] == nil || first["serial"] != serials[0] || first["messageSerial"] != msg ||
		first["type"] != "reaction:distinct.v1" || first["name"] != "like" || first["clientId"] != "alice" ||
		first["data"].(map[string]any)["emoji"] != "👍" || first["timestamp"].(float64) <= 0 {
		t.Fatalf("first item %v", first)
	}
	resp, b = e.call(t, http.MethodGet, base, url.Values{"from_serial": {*page.NextCursor}}, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"hasMore":false,"nextCursor":null`) || !strings.Contains(string(b), `"data":"seen"`) {
		t.Fatalf("second page: %d %s", resp.StatusCode, b)
	}
	resp, b = e.call(t, http.MethodGet, base, url.Values{"type": {"receipt:flag.v1"}}, nil)
	if resp.StatusCode != 200 || strings.Count(string(b), `"serial"`) != 1 {
		t.Fatalf("type filter: %d %s", resp.StatusCode, b)
	}
	resp, b = e.call(t, http.MethodDelete, base+"/"+serials[0], nil, nil)
	var del map[string]string
	if resp.StatusCode != 200 || json.Unmarshal(b, &del) != nil || del["deletedAnnotationSerial"] != serials[0] || del["annotationSerial"] <= serials[2] {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	resp, b = e.call(t, http.MethodDelete, base+"/"+serials[0], nil, nil)
	if resp.StatusCode != 200 || string(b) != `{"annotationSerial":"`+serials[0]+`","deletedAnnotationSerial":"`+serials[0]+`"}` {
		t.Fatalf("repeated delete: %d %s", resp.StatusCode, b)
	}

	big := `{"type":"r:total.v1","data":"` + strings.Repeat("x", 101*1024) + `"}`
	for _, c := range []struct {
		method, path, body string
		params             url.Values
		status             int
		want               string
	}{
		{"POST", "/apps/app-id/channels/chat/messages/nope/annotations", `{"type":"r:total.v1"}`, nil, 404, "not found"},
		{"POST", base, `{"type":"reaction:sum.v1"}`, nil, 400, "summarizer"},
		{"POST", base, `{"type":"reaction"}`, nil, 400, "namespace:summarizer.v1"},
		{"POST", base, `{"name":"x"}`, nil, 400, "type is required"},
		{"POST", base, `{"type":"r:distinct.v1","clientId":"a"}`, nil, 400, "name is required"},
		{"POST", base, `{"type":"r:total.v1","count":0}`, nil, 400, "count"},
		{"POST", base, `{"type":"r:total.v1","count":-1}`, nil, 400, "count"},
		{"POST", base, `{"type":"r:total.v1","clientId":"a","client_id":"b"}`, nil, 400, "differ"},
		{"POST", base, `{"type":"r:total.v1","socketId":"x"}`, nil, 400, "socket"},
		{"POST", base, `{"type":"r:total.v1","socketId":"123.456"}`, nil, 401, "not connected"},
		{"POST", base, big, nil, 413, "larger"},
		{"GET", base, "", url.Values{"from_serial": {"garbage"}}, 400, "cursor"},
		{"GET", base, "", url.Values{"type": {"nope"}}, 400, "type"},
		{"GET", base, "", url.Values{"limit": {"0"}}, 400, "limit"},
		{"GET", "/apps/app-id/channels/chat/messages/nope/annotations", "", nil, 404, "not found"},
		{"DELETE", base + "/" + protocol.FormatAnnotationSerial(99), "", nil, 404, "not found"},
		{"DELETE", base + "/bogus", "", nil, 400, "annotation serial"},
		{"DELETE", base + "/" + serials[1], "", url.Values{"socket_id": {"1.2"}}, 401, "not connected"},
		{"POST", "/apps/app-id/channels/nohist-x/messages/" + msg + "/annotations", `{"type":"r:total.v1"}`, nil, 422, "History is not enabled"},
	} {
		var body []byte
		if c.method == "POST" {
			body = []byte(c.body)
		}
		resp, b := e.call(t, c.method, c.path, c.params, body)
		if resp.StatusCode != c.status || !strings.Contains(string(b), c.want) {
			t.Errorf("%s %s %s: %d %s, want %d with %q", c.method, c.path, c.body[:min(len(c.body), 60)], resp.StatusCode, b, c.status, c.want)
		}
	}
}

// FuzzParseAnnotationBody: no body panics the parser; what it accepts has a valid type,
// compact JSON data and a valid socket id when one is given.
func FuzzParseAnnotationBody(f *testing.F) {
	for _, s := range []string{`{"type":"reaction:distinct.v1","name":"like","clientId":"a","data":{"x":1},"count":2,"encoding":"json","socketId":"1.2"}`,
		`{"type":"r:total.v1","client_id":"a","socket_id":"3.4"}`, `{"type":"r:total.v1","count":1e3}`, `{"type":null}`, `[]`, ``, `{"type":"r:total.v1","data":[1, 2 ]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, socket, aerr := parseAnnotationBody(b)
		if aerr != nil {
			if aerr.status != 400 {
				t.Fatalf("status %d", aerr.status)
			}
			return
		}
		if _, err := protocol.ParseAnnotationType(a.Type); err != nil {
			t.Fatalf("accepted type %q: %v", a.Type, err)
		}
		if socket != "" && !protocol.ValidSocketID(socket) {
			t.Fatalf("accepted socket %q", socket)
		}
		if a.Data != nil && !json.Valid(a.Data) {
			t.Fatalf("data %q", a.Data)
		}
	})
}
