package push

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Input limits.
const (
	MaxIDBytes        = 128
	MaxClientIDBytes  = 256
	MaxMetadataBytes  = 4096
	MaxTitleBytes     = 256
	MaxBodyBytes      = 4096
	MaxIconBytes      = 2048
	MaxDataBytes      = 8192
	MaxOverrideBytes  = 4096
	MaxTargets        = 1024
	MaxBatch          = 100
	MaxEndpointBytes  = 2048
	MaxFCMTokenBytes  = 4096
	maxAPNsTokenBytes = 200
	maxLocaleBytes    = 64
)

// DeviceInput is a parsed device registration body.
type DeviceInput struct {
	Device Device
}

// deviceBody accepts both Sockudo's DeviceDetails shape (push.recipient with a transportType)
// and the short form {platform: apns|fcm|web, token | subscription}.
type deviceBody struct {
	ID         string          `json:"id"`
	ClientID   *string         `json:"clientId"`
	UserID     *string         `json:"userId"`
	FormFactor string          `json:"formFactor"`
	Platform   string          `json:"platform"`
	Timezone   string          `json:"timezone"`
	Locale     string          `json:"locale"`
	Metadata   json.RawMessage `json:"metadata"`
	Token      string          `json:"token"`
	Sub        *struct {
		Endpoint string `json:"endpoint"`
		Keys     struct {
			P256dh string `json:"p256dh"`
			Auth   string `json:"auth"`
		} `json:"keys"`
	} `json:"subscription"`
	Push *struct {
		Recipient *recipientBody `json:"recipient"`
	} `json:"push"`
}

type recipientBody struct {
	TransportType     string `json:"transportType"`
	DeviceToken       string `json:"deviceToken"`
	RegistrationToken string `json:"registrationToken"`
	Endpoint          string `json:"endpoint"`
	P256dh            string `json:"p256dh"`
	Auth              string `json:"auth"`
}

// sockudoOS are Sockudo's descriptive platforms (Platform enum), which need push.recipient.
var sockudoOS = map[string]bool{"android": true, "ios": true, "browser": true, "windows": true,
	"macos": true, "watchos": true, "tvos": true, "other": true}

// ParseOptions tune the parsers.
type ParseOptions struct {
	// AllowPrivateEndpoints accepts Web Push endpoints on loopback and private addresses
	// (tests, on-premise push services). Default false: such endpoints are refused, so a
	// registration cannot make the server post to its own network.
	AllowPrivateEndpoints bool
	// AllowHTTPEndpoints accepts http:// Web Push endpoints (tests only).
	AllowHTTPEndpoints bool
}

// ParseDevice parses and validates a device registration body for app appID.
func ParseDevice(appID string, body []byte, o ParseOptions) (*Device, *Error) {
	var b deviceBody
	if err := decodeStrict(body, &b); err != nil {
		return nil, err
	}
	if err := checkID("id", b.ID); err != nil {
		return nil, err
	}
	d := &Device{AppID: appID, ID: b.ID, FormFactor: b.FormFactor, Timezone: b.Timezone, Locale: b.Locale}
	switch {
	case b.ClientID != nil:
		d.ClientID = *b.ClientID
	case b.UserID != nil:
		d.ClientID = *b.UserID
	}
	if err := checkClientID(d.ClientID, true); err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{{"formFactor", d.FormFactor}, {"timezone", d.Timezone}, {"locale", d.Locale}} {
		if len(f.v) > maxLocaleBytes || !printable(f.v) {
			return nil, errf(Invalid, "%s must be printable text of at most %d bytes", f.name, maxLocaleBytes)
		}
	}
	if m := bytes.TrimSpace(b.Metadata); len(m) > 0 && string(m) != "null" {
		if m[0] != '{' {
			return nil, errf(Invalid, "metadata must be a JSON object")
		}
		if len(m) > MaxMetadataBytes {
			return nil, errf(TooLarge, "metadata is %d bytes, the limit is %d", len(m), MaxMetadataBytes)
		}
		d.Metadata = append(json.RawMessage(nil), m...)
	}
	rec := recipientBody{}
	plat := strings.ToLower(b.Platform)
	switch {
	case b.Push != nil && b.Push.Recipient != nil:
		rec = *b.Push.Recipient
		if plat != "" && !sockudoOS[plat] && Platform(plat) != platformOf(rec.TransportType) {
			return nil, errf(Invalid, "unknown platform %q: use apns, fcm or web, or one of android, ios, browser, windows, macos, watchos, tvos, other with push.recipient", b.Platform)
		}
		d.OS = plat
	case plat == string(APNs):
		rec = recipientBody{TransportType: "apns", DeviceToken: b.Token}
	case plat == string(FCM):
		rec = recipientBody{TransportType: "gcm", RegistrationToken: b.Token}
	case plat == string(Web):
		rec.TransportType = "web"
		if b.Sub != nil {
			rec.Endpoint, rec.P256dh, rec.Auth = b.Sub.Endpoint, b.Sub.Keys.P256dh, b.Sub.Keys.Auth
		}
	case plat == "":
		return nil, errf(Invalid, "platform is required: apns, fcm or web (or Sockudo's push.recipient)")
	case sockudoOS[plat]:
		return nil, errf(Invalid, "push.recipient is required with platform %q (or use platform apns, fcm or web with token/subscription)", plat)
	default:
		return nil, errf(Invalid, "unknown platform %q: use apns, fcm or web", protoTrunc(b.Platform))
	}
	if err := fillRecipient(d, rec, o); err != nil {
		return nil, err
	}
	if d.OS == "" {
		d.OS = map[Platform]string{APNs: "ios", FCM: "android", Web: "browser"}[d.Platform]
	}
	if d.FormFactor == "" {
		d.FormFactor = map[Platform]string{APNs: "phone", FCM: "phone", Web: "desktop"}[d.Platform]
	}
	if d.Timezone == "" {
		d.Timezone = "UTC"
	}
	if d.Locale == "" {
		d.Locale = "en"
	}
	return d, nil
}

// platformOf maps a Sockudo transportType to a platform ("" when unknown).
func platformOf(transport string) Platform {
	switch transport {
	case "apns":
		return APNs
	case "gcm", "fcm":
		return FCM
	case "web":
		return Web
	}
	return ""
}

// fillRecipient validates the provider address and stores it on d.
func fillRecipient(d *Device, r recipientBody, o ParseOptions) *Error {
	d.Platform = platformOf(r.TransportType)
	switch d.Platform {
	case APNs:
		tok, err := ParseAPNsToken(r.DeviceToken)
		if err != nil {
			return err
		}
		d.Token = tok
	case FCM:
		if err := CheckFCMToken(r.RegistrationToken); err != nil {
			return err
		}
		d.Token = r.RegistrationToken
	case Web:
		ws, err := ParseWebSubscription(r.Endpoint, r.P256dh, r.Auth, o)
		if err != nil {
			return err
		}
		d.Web = ws
	default:
		if r.TransportType == "" {
			return errf(Invalid, "push.recipient.transportType is required: apns, gcm or web")
		}
		return errf(Invalid, "unknown platform %q: pushwire delivers to apns, gcm (fcm) and web", protoTrunc(r.TransportType))
	}
	return nil
}

// ParseAPNsToken validates an APNs device token: hex (Apple's are 64 digits, 32 bytes; up to
// 100 bytes accepted), returned in lowercase.
func ParseAPNsToken(s string) (string, *Error) {
	if s == "" {
		return "", errf(Invalid, "APNs device token is required (deviceToken or token)")
	}
	if len(s) > maxAPNsTokenBytes || len(s) < 32 || len(s)%2 != 0 {
		return "", errf(Invalid, "malformed APNs device token: expected 64 hexadecimal digits (32 bytes), got %d characters", len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", errf(Invalid, "malformed APNs device token: not hexadecimal")
	}
	return strings.ToLower(s), nil
}

// CheckFCMToken validates an FCM registration token: 8 to 4096 characters of A-Z a-z 0-9
// and - _ : . (the characters FCM tokens are made of).
func CheckFCMToken(s string) *Error {
	if s == "" {
		return errf(Invalid, "FCM registration token is required (registrationToken or token)")
	}
	if len(s) < 8 || len(s) > MaxFCMTokenBytes {
		return errf(Invalid, "malformed FCM registration token: %d characters, expected 8 to %d", len(s), MaxFCMTokenBytes)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':' || c == '.') {
			return errf(Invalid, "malformed FCM registration token: character %q at %d", c, i)
		}
	}
	return nil
}

// ParseWebSubscription validates a Web Push subscription: an https endpoint (not on a
// private address unless allowed), a P-256 public key (p256dh, 65 bytes uncompressed) and a
// 16-byte auth secret, both base64url.
func ParseWebSubscription(endpoint, p256dh, auth string, o ParseOptions) (*WebSubscription, *Error) {
	if endpoint == "" {
		return nil, errf(Invalid, "Web Push subscription endpoint is required")
	}
	if len(endpoint) > MaxEndpointBytes {
		return nil, errf(Invalid, "Web Push endpoint is longer than %d bytes", MaxEndpointBytes)
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, errf(Invalid, "Web Push endpoint must be an absolute URL without user info")
	}
	if u.Scheme != "https" && !(o.AllowHTTPEndpoints && u.Scheme == "http") {
		return nil, errf(Invalid, "Web Push endpoint must use https")
	}
	if !o.AllowPrivateEndpoints && privateHost(u.Hostname()) {
		return nil, errf(Invalid, "Web Push endpoint host %q is a local or private address", u.Hostname())
	}
	key, kerr := decodeB64(p256dh)
	if kerr != nil || len(key) != 65 || key[0] != 4 {
		return nil, errf(Invalid, "malformed p256dh: expected the base64url uncompressed P-256 public key (65 bytes)")
	}
	if _, err := ecdh.P256().NewPublicKey(key); err != nil {
		return nil, errf(Invalid, "malformed p256dh: not a point on P-256")
	}
	sec, aerr := decodeB64(auth)
	if aerr != nil || len(sec) != 16 {
		return nil, errf(Invalid, "malformed auth: expected a base64url 16-byte secret")
	}
	return &WebSubscription{Endpoint: endpoint, P256dh: p256dh, Auth: auth}, nil
}

// decodeB64 decodes base64url or standard base64, padded or not.
func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// privateHost reports whether host is localhost or a loopback, private, link-local or
// unspecified address.
func privateHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") || strings.HasSuffix(h, ".local") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsLinkLocalMulticast())
}

// SubscriptionInput is a parsed channel-subscription body.
type subscriptionBody struct {
	Channel  string  `json:"channel"`
	DeviceID string  `json:"deviceId"`
	ClientID *string `json:"clientId"`
	UserID   *string `json:"userId"`
	// Sockudo clients also send provider, tokenHash and credentialVersion: ignored (the
	// server derives them from the device).
	Provider          json.RawMessage `json:"provider"`
	TokenHash         json.RawMessage `json:"tokenHash"`
	CredentialVersion json.RawMessage `json:"credentialVersion"`
	AppID             json.RawMessage `json:"appId"`
}

// ParseSubscription parses {channel, deviceId} (a device) or {channel, clientId} (a user).
// With both, the device is subscribed and clientId must be the device's user.
func ParseSubscription(appID string, body []byte) (*Subscription, *Error) {
	var b subscriptionBody
	if err := decodeStrict(body, &b); err != nil {
		return nil, err
	}
	if err := CheckChannel(b.Channel); err != nil {
		return nil, err
	}
	s := &Subscription{AppID: appID, Channel: b.Channel, DeviceID: b.DeviceID}
	switch {
	case b.ClientID != nil:
		s.ClientID = *b.ClientID
	case b.UserID != nil:
		s.ClientID = *b.UserID
	}
	if s.DeviceID == "" && s.ClientID == "" {
		return nil, errf(Invalid, "deviceId or clientId is required")
	}
	if s.DeviceID != "" {
		if err := checkID("deviceId", s.DeviceID); err != nil {
			return nil, err
		}
	}
	if err := checkClientID(s.ClientID, true); err != nil {
		return nil, err
	}
	return s, nil
}

// CheckChannel validates a channel name: 1 to 200 bytes of Pusher's channel characters.
func CheckChannel(ch string) *Error {
	if ch == "" {
		return errf(Invalid, "channel is required")
	}
	if len(ch) > 200 {
		return errf(Invalid, "channel is %d bytes, the limit is 200", len(ch))
	}
	for i := 0; i < len(ch); i++ {
		c := ch[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-=@,.;:#", c) >= 0) {
			return errf(Invalid, "channel %q has an invalid character %q", protoTrunc(ch), c)
		}
	}
	return nil
}

// publishBody is Sockudo's PublishRequest.
type publishBody struct {
	PublishID   *string           `json:"publishId"`
	PublishID2  *string           `json:"publish_id"`
	Recipients  []json.RawMessage `json:"recipients"`
	Payload     *Payload          `json:"payload"`
	Overrides   []overrideBody    `json:"providerOverrides"`
	Sync        *bool             `json:"sync"`
	NotBeforeMs *int64            `json:"notBeforeMs"`
	ExpiresAtMs *int64            `json:"expiresAtMs"`
}

type overrideBody struct {
	Provider string          `json:"provider"`
	Payload  json.RawMessage `json:"payload"`
}

type targetBody struct {
	Type      string `json:"type"`
	DeviceID  string `json:"deviceId"`
	DeviceID2 string `json:"device_id"`
	ClientID  string `json:"clientId"`
	ClientID2 string `json:"client_id"`
	UserID    string `json:"userId"`
	Channel   string `json:"channel"`
}

// ParsePublish parses one publish request (Sockudo's PublishRequest) at time now.
func ParsePublish(body []byte, now time.Time) (*Request, *Error) {
	var b publishBody
	if err := decodeLoose(body, &b); err != nil {
		return nil, err
	}
	return b.request(now)
}

// ParseBatch parses a batch publish body: a JSON array of publish requests (at most
// MaxBatch).
func ParseBatch(body []byte, now time.Time) ([]*Request, *Error) {
	var items []json.RawMessage
	if err := decodeLoose(body, &items); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, errf(Invalid, "batch must be a non-empty JSON array of publish requests")
	}
	if len(items) > MaxBatch {
		return nil, errf(Invalid, "batch has %d requests, the limit is %d", len(items), MaxBatch)
	}
	out := make([]*Request, len(items))
	for i, raw := range items {
		r, err := ParsePublish(raw, now)
		if err != nil {
			return nil, &Error{Kind: err.Kind, Msg: "batch[" + itoa(i) + "]: " + err.Msg}
		}
		out[i] = r
	}
	return out, nil
}

func (b *publishBody) request(now time.Time) (*Request, *Error) {
	r := &Request{}
	switch {
	case b.PublishID != nil:
		r.PublishID = *b.PublishID
	case b.PublishID2 != nil:
		r.PublishID = *b.PublishID2
	}
	if r.PublishID != "" {
		if err := checkID("publishId", r.PublishID); err != nil {
			return nil, err
		}
	}
	if len(b.Recipients) == 0 {
		return nil, errf(Invalid, "recipients must list at least one target ({type: device|client|channel, ...})")
	}
	if len(b.Recipients) > MaxTargets {
		return nil, errf(Invalid, "recipients has %d targets, the limit is %d", len(b.Recipients), MaxTargets)
	}
	for i, raw := range b.Recipients {
		t, err := parseTarget(raw)
		if err != nil {
			return nil, &Error{Kind: err.Kind, Msg: "recipients[" + itoa(i) + "]: " + err.Msg}
		}
		r.Targets = append(r.Targets, t)
	}
	if b.Payload == nil {
		return nil, errf(Invalid, "payload is required")
	}
	r.Payload = *b.Payload
	if err := checkPayload(&r.Payload); err != nil {
		return nil, err
	}
	for i, o := range b.Overrides {
		p := overridePlatform(o.Provider)
		if p == "" {
			return nil, errf(Invalid, "providerOverrides[%d].provider %q: use apns, fcm or webPush", i, protoTrunc(o.Provider))
		}
		raw := bytes.TrimSpace(o.Payload)
		if len(raw) == 0 || raw[0] != '{' {
			return nil, errf(Invalid, "providerOverrides[%d].payload must be a JSON object", i)
		}
		if len(raw) > MaxOverrideBytes {
			return nil, errf(TooLarge, "providerOverrides[%d].payload is %d bytes, the limit is %d", i, len(raw), MaxOverrideBytes)
		}
		if r.Overrides == nil {
			r.Overrides = map[Platform]json.RawMessage{}
		}
		r.Overrides[p] = append(json.RawMessage(nil), raw...)
	}
	if b.NotBeforeMs != nil && *b.NotBeforeMs > 0 {
		r.NotBefore = time.UnixMilli(*b.NotBeforeMs)
		if r.NotBefore.After(now.Add(366 * 24 * time.Hour)) {
			return nil, errf(Invalid, "notBeforeMs is more than a year ahead")
		}
	}
	if b.ExpiresAtMs != nil && *b.ExpiresAtMs > 0 {
		r.ExpiresAt = time.UnixMilli(*b.ExpiresAtMs)
		if !r.ExpiresAt.After(now) {
			return nil, errf(Invalid, "expiresAtMs is in the past")
		}
		if !r.NotBefore.IsZero() && !r.ExpiresAt.After(r.NotBefore) {
			return nil, errf(Invalid, "expiresAtMs must be after notBeforeMs")
		}
	}
	return r, nil
}

// UnmarshalJSON accepts "data" as well as "templateData" and refuses templates.
func (p *Payload) UnmarshalJSON(b []byte) error {
	type plain Payload
	var pb struct {
		plain
		Data       json.RawMessage `json:"data"`
		TemplateID *string         `json:"templateId"`
	}
	if err := json.Unmarshal(b, &pb); err != nil {
		return err
	}
	*p = Payload(pb.plain)
	if len(p.Data) == 0 && len(pb.Data) > 0 {
		p.Data = pb.Data
	}
	if pb.TemplateID != nil && *pb.TemplateID != "" {
		return &Error{Kind: Invalid, Msg: "payload.templateId: notification templates are not supported by pushwire; send title and body"}
	}
	return nil
}

func parseTarget(raw json.RawMessage) (Target, *Error) {
	var t targetBody
	if err := json.Unmarshal(raw, &t); err != nil {
		return Target{}, errf(Invalid, "must be an object {type, deviceId|clientId|channel}")
	}
	switch t.Type {
	case "device":
		id := first(t.DeviceID, t.DeviceID2)
		if err := checkID("deviceId", id); err != nil {
			return Target{}, err
		}
		return Target{Kind: TargetDevice, ID: id}, nil
	case "client", "user":
		id := first(t.ClientID, t.ClientID2, t.UserID)
		if id == "" {
			return Target{}, errf(Invalid, "clientId is required")
		}
		if err := checkClientID(id, false); err != nil {
			return Target{}, err
		}
		return Target{Kind: TargetClient, ID: id}, nil
	case "channel":
		if err := CheckChannel(t.Channel); err != nil {
			return Target{}, err
		}
		return Target{Kind: TargetChannel, ID: t.Channel}, nil
	case "":
		return Target{}, errf(Invalid, "type is required: device, client or channel")
	case "registeredTopic", "userTopic", "recipient", "providerTopic", "providerCondition", "indexedFilter":
		return Target{}, errf(Invalid, "target type %q is not supported by pushwire: use device, client or channel", t.Type)
	}
	return Target{}, errf(Invalid, "unknown target type %q: use device, client or channel", protoTrunc(t.Type))
}

func overridePlatform(s string) Platform {
	switch s {
	case "apns":
		return APNs
	case "fcm", "gcm":
		return FCM
	case "webPush", "webpush", "web_push", "web":
		return Web
	}
	return ""
}

func checkPayload(p *Payload) *Error {
	if p.Title == "" && p.Body == "" && len(p.Data) == 0 {
		return errf(Invalid, "payload needs a title, a body or templateData")
	}
	for _, f := range []struct {
		name string
		v    string
		max  int
	}{{"title", p.Title, MaxTitleBytes}, {"body", p.Body, MaxBodyBytes}, {"icon", p.Icon, MaxIconBytes}, {"sound", p.Sound, maxLocaleBytes * 4}, {"collapseKey", p.CollapseKey, 64}} {
		if len(f.v) > f.max {
			return errf(TooLarge, "payload.%s is %d bytes, the limit is %d", f.name, len(f.v), f.max)
		}
		if !utf8.ValidString(f.v) {
			return errf(Invalid, "payload.%s is not valid UTF-8", f.name)
		}
	}
	if p.Icon != "" {
		if u, err := url.Parse(p.Icon); err != nil || u.Scheme != "https" || u.Host == "" {
			return errf(Invalid, "payload.icon must be an https URL")
		}
	}
	if d := bytes.TrimSpace(p.Data); len(d) > 0 {
		if string(d) == "null" {
			p.Data = nil
		} else if d[0] != '{' {
			return errf(Invalid, "payload.templateData must be a JSON object")
		} else if len(d) > MaxDataBytes {
			return errf(TooLarge, "payload.templateData is %d bytes, the limit is %d", len(d), MaxDataBytes)
		} else {
			var buf bytes.Buffer
			if err := json.Compact(&buf, d); err != nil {
				return errf(Invalid, "payload.templateData: %v", err)
			}
			p.Data = buf.Bytes()
		}
	}
	return nil
}

// ParseDeliveryEvent parses a delivery receipt (Sockudo's DeliveryEvent).
func ParseDeliveryEvent(appID string, body []byte, now time.Time) (*DeliveryEvent, *Error) {
	var e DeliveryEvent
	if err := decodeLoose(body, &e); err != nil {
		return nil, err
	}
	e.AppID = appID
	if err := checkID("publishId", e.PublishID); err != nil {
		return nil, err
	}
	if e.EventID == "" {
		e.EventID = newID()
	} else if err := checkID("eventId", e.EventID); err != nil {
		return nil, err
	}
	if e.OccurredAt <= 0 {
		e.OccurredAt = now.UnixMilli()
	}
	r := bytes.TrimSpace(e.Result)
	if len(r) == 0 || r[0] != '{' {
		return nil, errf(Invalid, "result must be a JSON object")
	}
	if len(r) > MaxMetadataBytes {
		return nil, errf(TooLarge, "result is %d bytes, the limit is %d", len(r), MaxMetadataBytes)
	}
	var buf bytes.Buffer
	_ = json.Compact(&buf, r)
	e.Result = buf.Bytes()
	return &e, nil
}

func checkID(field, id string) *Error {
	if id == "" {
		return errf(Invalid, "%s is required", field)
	}
	if len(id) > MaxIDBytes {
		return errf(Invalid, "%s is %d bytes, the limit is %d", field, len(id), MaxIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] >= 0x7f || id[i] == '/' {
			return errf(Invalid, "%s must be printable ASCII without spaces or '/'", field)
		}
	}
	return nil
}

func checkClientID(id string, optional bool) *Error {
	if id == "" && optional {
		return nil
	}
	if len(id) > MaxClientIDBytes || !utf8.ValidString(id) || !printable(id) || id == "" {
		return errf(Invalid, "clientId must be printable text of 1 to %d bytes", MaxClientIDBytes)
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// decodeStrict decodes one JSON object into v, refusing trailing data.
func decodeStrict(body []byte, v any) *Error {
	return decode(body, v)
}

// decodeLoose is decodeStrict for bodies that may be arrays.
func decodeLoose(body []byte, v any) *Error { return decode(body, v) }

func decode(body []byte, v any) *Error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errf(Invalid, "request body is empty: expected JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var pe *Error
		if ok := asPushError(err, &pe); ok {
			return pe
		}
		var te *json.UnmarshalTypeError
		if asTypeError(err, &te) && te.Field != "" {
			return errf(Invalid, "invalid JSON body: field %q has the wrong type (%s)", te.Field, te.Value)
		}
		return errf(Invalid, "invalid JSON body: %v", err)
	}
	if dec.More() {
		return errf(Invalid, "invalid JSON body: trailing data after the JSON value")
	}
	return nil
}

// protoTrunc shortens s for an error message.
func protoTrunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
