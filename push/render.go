package push

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Provider payload limits.
const (
	// MaxAPNsPayload is APNs' limit on a notification body (4 KB).
	MaxAPNsPayload = 4096
	// MaxFCMPayload is FCM's limit on a message's notification and data (4 KB); the JSON of
	// the message without its token is checked against it.
	MaxFCMPayload = 4096
	// MaxWebPushPlaintext is the largest plaintext that fits one 4096-byte aes128gcm record
	// (RFC 8291: 4096 - 86 header - 16 tag - 1 delimiter), so the encrypted body stays
	// within the 4 KB push services accept.
	MaxWebPushPlaintext = 3993
)

// apnsRendered is an APNs request body and its apns-* headers.
type apnsRendered struct {
	Body       []byte
	PushType   string
	Priority   int
	CollapseID string
}

// renderAPNs builds the APNs body: {"aps":{"alert":{"title","body"},"sound"},"data":{...}}
// (Sockudo's shape), or the override's body, whose optional "headers" object sets
// apns-push-type, apns-priority and apns-collapse-id.
func renderAPNs(p *Payload, override json.RawMessage) (*apnsRendered, *Error) {
	r := &apnsRendered{PushType: "alert", Priority: 10, CollapseID: p.CollapseKey}
	if override != nil {
		var o map[string]json.RawMessage
		if err := json.Unmarshal(override, &o); err != nil {
			return nil, errf(Invalid, "apns override: %v", err)
		}
		if h, ok := o["headers"]; ok {
			var hs map[string]any
			_ = json.Unmarshal(h, &hs)
			if v, ok := hs["apns-push-type"].(string); ok && v != "" {
				r.PushType = v
			}
			switch v := hs["apns-priority"].(type) {
			case string:
				r.Priority, _ = strconv.Atoi(v)
			case float64:
				r.Priority = int(v)
			}
			if v, ok := hs["apns-collapse-id"].(string); ok {
				r.CollapseID = v
			}
			delete(o, "headers")
		}
		r.Body = marshal(o)
	} else {
		type alert struct {
			Title string `json:"title,omitempty"`
			Body  string `json:"body,omitempty"`
		}
		type aps struct {
			Alert            *alert `json:"alert,omitempty"`
			Sound            string `json:"sound,omitempty"`
			ContentAvailable int    `json:"content-available,omitempty"`
		}
		body := struct {
			APS  aps             `json:"aps"`
			Data json.RawMessage `json:"data,omitempty"`
		}{Data: p.Data}
		if p.Title != "" || p.Body != "" {
			body.APS.Alert = &alert{p.Title, p.Body}
			body.APS.Sound = p.Sound
		} else {
			// A data-only notification is a background push (Apple: apns-push-type
			// background, priority 5, content-available 1).
			body.APS.ContentAvailable = 1
			r.PushType, r.Priority = "background", 5
		}
		r.Body = marshal(body)
	}
	if len(r.Body) > MaxAPNsPayload {
		return nil, errf(TooLarge, "APNs payload would be %d bytes; APNs accepts at most %d", len(r.Body), MaxAPNsPayload)
	}
	return r, nil
}

// renderFCM builds the FCM v1 message without its token: {"notification":{"title","body",
// "image"},"data":{string:string},"android":{"collapse_key","notification":{"icon","sound"}}}
// or the override's "message" object. FCM data values must be strings: other JSON values
// are sent as their JSON text.
func renderFCM(p *Payload, override json.RawMessage) (map[string]json.RawMessage, *Error) {
	msg := map[string]json.RawMessage{}
	if override != nil {
		var o struct {
			Message map[string]json.RawMessage `json:"message"`
		}
		if err := json.Unmarshal(override, &o); err != nil || o.Message == nil {
			return nil, errf(Invalid, "fcm override must be {\"message\": {...}} (FCM v1)")
		}
		msg = o.Message
		delete(msg, "token")
	} else {
		if p.Title != "" || p.Body != "" || p.Icon != "" {
			msg["notification"] = marshal(struct {
				Title string `json:"title,omitempty"`
				Body  string `json:"body,omitempty"`
				Image string `json:"image,omitempty"`
			}{p.Title, p.Body, p.Icon})
		}
		if len(p.Data) > 0 {
			d, err := stringMap(p.Data)
			if err != nil {
				return nil, err
			}
			msg["data"] = marshal(d)
		}
		type androidNote struct {
			Icon  string `json:"icon,omitempty"`
			Sound string `json:"sound,omitempty"`
		}
		android := struct {
			CollapseKey  string       `json:"collapse_key,omitempty"`
			Notification *androidNote `json:"notification,omitempty"`
		}{CollapseKey: p.CollapseKey}
		if p.Sound != "" {
			android.Notification = &androidNote{Sound: p.Sound}
		}
		if android.CollapseKey != "" || android.Notification != nil {
			msg["android"] = marshal(android)
		}
	}
	if n := len(marshal(msg)); n > MaxFCMPayload {
		return nil, errf(TooLarge, "FCM message would be %d bytes; FCM accepts at most %d", n, MaxFCMPayload)
	}
	return msg, nil
}

// stringMap turns a JSON object into FCM's map of strings.
func stringMap(raw json.RawMessage) (map[string]string, *Error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errf(Invalid, "templateData must be a JSON object")
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		var s string
		if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil {
			out[k] = s
		} else {
			out[k] = string(v)
		}
	}
	return out, nil
}

// webRendered is a Web Push plaintext and its headers.
type webRendered struct {
	Body    []byte
	Topic   string
	Urgency string
}

// renderWeb builds the Web Push plaintext {"notification":{"title","body","icon"},
// "data":{...}} (what a service worker reads with event.data.json()), or the override.
func renderWeb(p *Payload, override json.RawMessage) (*webRendered, *Error) {
	r := &webRendered{Topic: p.CollapseKey, Urgency: "normal"}
	if override != nil {
		r.Body = override
	} else {
		body := struct {
			Notification *struct {
				Title string `json:"title,omitempty"`
				Body  string `json:"body,omitempty"`
				Icon  string `json:"icon,omitempty"`
			} `json:"notification,omitempty"`
			Data json.RawMessage `json:"data,omitempty"`
		}{Data: p.Data}
		if p.Title != "" || p.Body != "" || p.Icon != "" {
			body.Notification = &struct {
				Title string `json:"title,omitempty"`
				Body  string `json:"body,omitempty"`
				Icon  string `json:"icon,omitempty"`
			}{p.Title, p.Body, p.Icon}
		}
		r.Body = marshal(body)
	}
	if len(r.Body) > MaxWebPushPlaintext {
		return nil, errf(TooLarge, "Web Push payload would be %d bytes before encryption; at most %d fit the 4096-byte encrypted record", len(r.Body), MaxWebPushPlaintext)
	}
	// Web Push topics are at most 32 URL-safe base64 characters (RFC 8030 §5.4).
	if len(r.Topic) > 32 || !urlSafe(r.Topic) {
		r.Topic = ""
	}
	return r, nil
}

// CheckPayload renders the payload for every platform and returns the first size or
// override error, so an oversized publish is refused before it is queued.
func CheckPayload(p *Payload, overrides map[Platform]json.RawMessage) *Error {
	if _, err := renderAPNs(p, overrides[APNs]); err != nil {
		return err
	}
	if _, err := renderFCM(p, overrides[FCM]); err != nil {
		return err
	}
	_, err := renderWeb(p, overrides[Web])
	return err
}

func urlSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// marshal encodes v compactly without HTML escaping.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return []byte("null")
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}
