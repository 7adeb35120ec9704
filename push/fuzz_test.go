package push

import (
	"encoding/json"
	"testing"
	"time"
)

// The fuzz targets feed every parser of untrusted input: none may panic, and what they
// accept must be valid by their own rules.

var fuzzNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func FuzzParseDevice(f *testing.F) {
	for _, s := range []string{
		`{"id":"d","clientId":"u","platform":"apns","token":"00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0"}`,
		`{"id":"d","platform":"fcm","token":"fcm:APA91b-xyz"}`,
		`{"id":"d","platform":"web","subscription":{"endpoint":"https://push.example.com/x","keys":{"p256dh":"BPBo3b2wAW0Ly0fNT5x3tEaQ8KZ6Tw5Umz2NsakYBBfTKYm3uQnYqkkEEAqdD7O2YGb6mCtgb5M-cbDtGyZSsEM","auth":"AAAAAAAAAAAAAAAAAAAAAA"}}}`,
		`{"id":"d","formFactor":"phone","platform":"ios","timezone":"UTC","locale":"en","metadata":{"a":1},"push":{"recipient":{"transportType":"apns","deviceToken":"00FC13ADFF785122B4AD28809A3420982341241421348097878E577C991DE8F0"}}}`,
		`{"id":"d","platform":"android","push":{"recipient":{"transportType":"gcm","registrationToken":"tok"}}}`,
		`{"id":"","platform":"x"}`, `[]`, `{"id":"d","platform":"web","subscription":{"endpoint":"https://10.0.0.1/"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDevice("app", b, ParseOptions{})
		if err != nil {
			if err.Kind == 0 || err.Msg == "" {
				t.Fatalf("error without kind or message: %+v", err)
			}
			return
		}
		if checkID("id", d.ID) != nil || d.Platform == "" || (d.Platform == Web) != (d.Web != nil) {
			t.Fatalf("accepted an invalid device %+v", d)
		}
		switch d.Platform {
		case APNs:
			if _, err := ParseAPNsToken(d.Token); err != nil {
				t.Fatal(err)
			}
		case FCM:
			if CheckFCMToken(d.Token) != nil {
				t.Fatal("bad FCM token accepted")
			}
		case Web:
			if _, err := ParseWebSubscription(d.Web.Endpoint, d.Web.P256dh, d.Web.Auth, ParseOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		_ = ViewDevice(d)
	})
}

func FuzzParsePublish(f *testing.F) {
	for _, s := range []string{
		`{"recipients":[{"type":"channel","channel":"orders"}],"payload":{"title":"t","body":"b","templateData":{"k":1}},"sync":false}`,
		`{"publishId":"p1","recipients":[{"type":"device","deviceId":"d"},{"type":"client","client_id":"u"}],"payload":{"title":"t"},"providerOverrides":[{"provider":"fcm","payload":{"message":{"data":{"a":"b"}}}}],"notBeforeMs":1767225600000,"expiresAtMs":1767229200000}`,
		`{"recipients":[{"type":"user","userId":"u"}],"payload":{"data":{"x":[1,2]}}}`,
		`{"recipients":[],"payload":{}}`, `{"payload":{"templateId":"x"}}`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParsePublish(b, fuzzNow)
		if err != nil {
			return
		}
		if len(r.Targets) == 0 || len(r.Targets) > MaxTargets {
			t.Fatalf("targets %d", len(r.Targets))
		}
		if len(r.Payload.Data) > 0 && !json.Valid(r.Payload.Data) {
			t.Fatalf("invalid templateData accepted: %q", r.Payload.Data)
		}
		if perr := CheckPayload(&r.Payload, r.Overrides); perr == nil {
			if a, _ := renderAPNs(&r.Payload, r.Overrides[APNs]); len(a.Body) > MaxAPNsPayload || !json.Valid(a.Body) {
				t.Fatalf("APNs body %q", a.Body)
			}
			if w, _ := renderWeb(&r.Payload, r.Overrides[Web]); len(w.Body) > MaxWebPushPlaintext {
				t.Fatal("web body too large")
			}
		}
		_, _ = ParseBatch(append(append([]byte("["), b...), ']'), fuzzNow)
	})
}

func FuzzParseSubscription(f *testing.F) {
	for _, s := range []string{`{"channel":"c","deviceId":"d"}`, `{"channel":"private-c","clientId":"u","provider":"fcm","tokenHash":"x","credentialVersion":1}`, `{"channel":"bad channel"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSubscription("app", b)
		if err != nil {
			return
		}
		if CheckChannel(s.Channel) != nil || (s.DeviceID == "" && s.ClientID == "") {
			t.Fatalf("accepted %+v", s)
		}
	})
}

func FuzzIdentityToken(f *testing.F) {
	tok, hash := NewIdentityToken()
	f.Add(tok, hash)
	f.Add("", "")
	f.Add("Bearer x", "sha256$00")
	f.Fuzz(func(t *testing.T, token, stored string) {
		ok := VerifyIdentityToken(token, stored)
		if ok && (CheckIdentityToken(token) != nil || HashIdentityToken(token) != stored) {
			t.Fatalf("verified %q against %q", token, stored)
		}
		if CheckIdentityToken(token) == nil && !VerifyIdentityToken(token, HashIdentityToken(token)) {
			t.Fatal("a well-formed token does not verify against its own hash")
		}
		_ = BearerToken(token, "Bearer "+stored)
	})
}

func FuzzCursor(f *testing.F) {
	f.Add("app", "devices", "d1", EncodeCursor("app", "devices", "d1"))
	f.Add("app", "devices", "", "!!")
	f.Fuzz(func(t *testing.T, app, kind, pos, raw string) {
		enc := EncodeCursor(app, kind, pos)
		if got, err := DecodeCursor(app, kind, enc); pos != "" && len(enc) <= 2048 && (err != nil || got != pos) {
			t.Fatalf("round trip of %q: %q %v", pos, got, err)
		}
		_, _ = DecodeCursor(app, kind, raw)
		_, _ = ParseLimit(raw)
	})
}

func FuzzParseDeliveryEvent(f *testing.F) {
	f.Add([]byte(`{"publishId":"p","eventId":"e","occurredAtMs":1,"result":{"outcome":"accepted"}}`))
	f.Add([]byte(`{"publishId":"p","result":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseDeliveryEvent("app", b, fuzzNow)
		if err == nil && (!json.Valid(e.Result) || e.EventID == "") {
			t.Fatalf("accepted %+v", e)
		}
	})
}
