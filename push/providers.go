package push

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/SherClockHolmes/webpush-go"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// Provider sends one notification to one device. Implementations must be safe for
// concurrent use and never panic on a provider's answer.
type Provider interface {
	Send(ctx context.Context, d *Device, n *Notification) Result
}

// Notification is what a provider sends: the payload, the platform's override and when it
// stops being worth delivering.
type Notification struct {
	PublishID string
	Payload   *Payload
	Override  json.RawMessage
	ExpiresAt time.Time
}

// sendTimeout bounds one provider request.
const sendTimeout = 30 * time.Second

// APNsOptions configure the APNs client (token auth).
type APNsOptions struct {
	TeamID, KeyID string
	// Key is the .p8 PEM (PKCS#8 EC P-256 key).
	Key        []byte
	Topic      string
	Production bool
	// Endpoint overrides the APNs base URL.
	Endpoint string
	// RootCAs, when set, are the roots trusted for the endpoint (tests, private gateways).
	RootCAs *x509.CertPool
}

// APNsProvider sends through APNs: HTTP/2, an ES256 provider token (JWT with kid = key id,
// iss = team id, renewed every 50 minutes), POST /3/device/{token} with the apns-topic,
// apns-push-type, apns-priority, apns-collapse-id and apns-expiration headers. It is
// github.com/sideshow/apns2.
type APNsProvider struct {
	client *apns2.Client
	topic  string
	tok    *token.Token
}

// NewAPNs returns an APNs provider, or an error naming what is wrong with the credentials.
func NewAPNs(o APNsOptions) (*APNsProvider, error) {
	key, err := token.AuthKeyFromBytes(o.Key)
	if err != nil {
		return nil, fmt.Errorf("apns: private key: %w (expected the .p8 PEM of an EC P-256 key)", err)
	}
	tok := &token.Token{AuthKey: key, KeyID: o.KeyID, TeamID: o.TeamID}
	c := apns2.NewTokenClient(tok)
	c.Host = apns2.HostDevelopment
	if o.Production {
		c.Host = apns2.HostProduction
	}
	if o.Endpoint != "" {
		c.Host = strings.TrimSuffix(o.Endpoint, "/")
	}
	if o.RootCAs != nil {
		c.HTTPClient = &http.Client{Timeout: sendTimeout, Transport: &http2.Transport{
			TLSClientConfig: &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
			ReadIdleTimeout: 15 * time.Second,
		}}
	}
	return &APNsProvider{client: c, topic: o.Topic, tok: tok}, nil
}

// Send implements Provider.
func (p *APNsProvider) Send(ctx context.Context, d *Device, n *Notification) Result {
	r, perr := renderAPNs(n.Payload, n.Override)
	if perr != nil {
		return Result{Outcome: Rejected, Reason: perr.Msg}
	}
	note := &apns2.Notification{DeviceToken: d.Token, Topic: p.topic, Payload: r.Body,
		PushType: apns2.EPushType(r.PushType), Priority: r.Priority, CollapseID: r.CollapseID}
	if !n.ExpiresAt.IsZero() {
		note.Expiration = n.ExpiresAt
	}
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	res, err := p.client.PushWithContext(ctx, note)
	if err != nil {
		return Result{Outcome: Retry, Reason: "apns: " + err.Error()}
	}
	out := Result{Status: res.StatusCode, Reason: res.Reason, ID: res.ApnsID}
	switch {
	case res.StatusCode == http.StatusOK:
		out.Outcome = Delivered
	case res.StatusCode == http.StatusGone || res.Reason == apns2.ReasonBadDeviceToken || res.Reason == apns2.ReasonUnregistered:
		out.Outcome = Unregistered
	case res.Reason == apns2.ReasonExpiredProviderToken:
		p.tok.Lock()
		p.tok.IssuedAt = 0 // force a new provider token on the next send
		p.tok.Unlock()
		out.Outcome = Retry
	case res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500:
		out.Outcome = Retry
	default:
		out.Outcome = Rejected
	}
	return out
}

// FCMOptions configure the FCM HTTP v1 client.
type FCMOptions struct {
	// ServiceAccountJSON is the service account key file's content.
	ServiceAccountJSON []byte
	// ProjectID defaults to the key's project_id.
	ProjectID string
	// Endpoint overrides https://fcm.googleapis.com.
	Endpoint string
	// RootCAs, when set, are trusted for the endpoint and the token URI.
	RootCAs *x509.CertPool
}

// FCMProvider sends through FCM HTTP v1: POST /v1/projects/{project}/messages:send with
// {"message":{...,"token":...}}, authorized by an OAuth2 access token that
// golang.org/x/oauth2/google obtains from the service account (a JWT-bearer grant signed
// RS256 with the account's key, posted to its token_uri) and caches until it expires.
type FCMProvider struct {
	client  *http.Client
	sendURL string
}

// NewFCM returns an FCM provider, or an error naming what is wrong with the credentials.
func NewFCM(o FCMOptions) (*FCMProvider, error) {
	cfg, err := google.JWTConfigFromJSON(o.ServiceAccountJSON, "https://www.googleapis.com/auth/firebase.messaging")
	if err != nil {
		return nil, fmt.Errorf("fcm: service account: %w", err)
	}
	project := o.ProjectID
	if project == "" {
		var sa struct {
			ProjectID string `json:"project_id"`
		}
		_ = json.Unmarshal(o.ServiceAccountJSON, &sa)
		project = sa.ProjectID
	}
	if project == "" {
		return nil, fmt.Errorf("fcm: no project_id in the service account and none configured")
	}
	base := &http.Client{Timeout: sendTimeout, Transport: transport(o.RootCAs)}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, base)
	client := oauth2.NewClient(ctx, cfg.TokenSource(ctx))
	client.Timeout = sendTimeout
	endpoint := strings.TrimSuffix(o.Endpoint, "/")
	if endpoint == "" {
		endpoint = "https://fcm.googleapis.com"
	}
	return &FCMProvider{client: client, sendURL: endpoint + "/v1/projects/" + url.PathEscape(project) + "/messages:send"}, nil
}

// Send implements Provider.
func (p *FCMProvider) Send(ctx context.Context, d *Device, n *Notification) Result {
	msg, perr := renderFCM(n.Payload, n.Override)
	if perr != nil {
		return Result{Outcome: Rejected, Reason: perr.Msg}
	}
	msg["token"] = marshal(d.Token)
	body := marshal(map[string]any{"message": msg})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.sendURL, bytes.NewReader(body))
	if err != nil {
		return Result{Outcome: Rejected, Reason: "fcm: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := p.client.Do(req)
	if err != nil {
		return Result{Outcome: Retry, Reason: "fcm: " + err.Error()}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	out := Result{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	if resp.StatusCode == http.StatusOK {
		var ok struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(raw, &ok)
		out.Outcome, out.ID = Delivered, ok.Name
		return out
	}
	var e struct {
		Error struct {
			Status  string `json:"status"`
			Message string `json:"message"`
			Details []struct {
				ErrorCode string `json:"errorCode"`
			} `json:"details"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &e)
	code := e.Error.Status
	for _, d := range e.Error.Details {
		if d.ErrorCode != "" {
			code = d.ErrorCode
		}
	}
	out.Reason = strings.TrimSpace(code + " " + e.Error.Message)
	switch {
	case code == "UNREGISTERED":
		out.Outcome = Unregistered
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 || code == "UNAVAILABLE" || code == "INTERNAL" || code == "QUOTA_EXCEEDED":
		out.Outcome = Retry
	default:
		out.Outcome = Rejected
	}
	return out
}

// WebPushOptions configure the Web Push client.
type WebPushOptions struct {
	VAPIDPublicKey, VAPIDPrivateKey string
	// Subject is mailto:... or an https URL.
	Subject string
	RootCAs *x509.CertPool
}

// WebPushProvider sends Web Push (RFC 8030) messages encrypted with aes128gcm (RFC 8291,
// one 4096-byte record) and authorized with VAPID (RFC 8292: an ES256 JWT with aud = the
// endpoint's origin, exp within 12 h and sub = Subject; "vapid t=..., k=..."). It is
// github.com/SherClockHolmes/webpush-go.
type WebPushProvider struct {
	o      WebPushOptions
	client *http.Client
}

// NewWebPush returns a Web Push provider, or an error naming what is wrong with the keys.
func NewWebPush(o WebPushOptions) (*WebPushProvider, error) {
	pub, err := decodeB64(o.VAPIDPublicKey)
	if err != nil || len(pub) != 65 {
		return nil, fmt.Errorf("web push: vapid_public_key must be the base64url 65-byte uncompressed P-256 point")
	}
	priv, err := decodeB64(o.VAPIDPrivateKey)
	if err != nil || len(priv) != 32 {
		return nil, fmt.Errorf("web push: vapid_private_key must be the base64url 32-byte P-256 scalar")
	}
	k, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil || !bytes.Equal(k.PublicKey().Bytes(), pub) {
		return nil, fmt.Errorf("web push: vapid_public_key does not belong to vapid_private_key")
	}
	if !strings.HasPrefix(o.Subject, "mailto:") && !strings.HasPrefix(o.Subject, "https:") {
		return nil, fmt.Errorf("web push: subject must start with mailto: or https:")
	}
	return &WebPushProvider{o: o, client: &http.Client{Timeout: sendTimeout, Transport: transport(o.RootCAs),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// Send implements Provider.
func (p *WebPushProvider) Send(ctx context.Context, d *Device, n *Notification) Result {
	r, perr := renderWeb(n.Payload, n.Override)
	if perr != nil {
		return Result{Outcome: Rejected, Reason: perr.Msg}
	}
	ttl := 4 * 7 * 24 * 3600
	if !n.ExpiresAt.IsZero() {
		ttl = max(0, min(ttl, int(time.Until(n.ExpiresAt).Seconds())))
	}
	// webpush-go prefixes "mailto:" to any subject that is not an https URL.
	sub := strings.TrimPrefix(p.o.Subject, "mailto:")
	resp, err := webpush.SendNotificationWithContext(ctx, r.Body,
		&webpush.Subscription{Endpoint: d.Web.Endpoint, Keys: webpush.Keys{Auth: d.Web.Auth, P256dh: d.Web.P256dh}},
		&webpush.Options{HTTPClient: p.client, Subscriber: sub, VAPIDPublicKey: p.o.VAPIDPublicKey,
			VAPIDPrivateKey: p.o.VAPIDPrivateKey, TTL: ttl, Urgency: webpush.Urgency(r.Urgency), Topic: r.Topic})
	if err != nil {
		if ctx.Err() == nil && !isNetErr(err) {
			return Result{Outcome: Rejected, Reason: "web push: " + err.Error()}
		}
		return Result{Outcome: Retry, Reason: "web push: " + err.Error()}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	out := Result{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After")), Reason: strings.TrimSpace(string(raw))}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		out.Outcome, out.ID, out.Reason = Delivered, resp.Header.Get("Location"), ""
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		out.Outcome = Unregistered
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		out.Outcome = Retry
	default:
		out.Outcome = Rejected
	}
	if len(out.Reason) > 200 {
		out.Reason = out.Reason[:200]
	}
	return out
}

// isNetErr reports whether a webpush-go error came from the transport (its other errors are
// about the subscription keys).
func isNetErr(err error) bool {
	var ue *url.Error
	return asURLError(err, &ue)
}

// transport is an HTTP/1.1+2 transport trusting roots (nil: the system's).
func transport(roots *x509.CertPool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	if roots != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return t
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s > 0 {
		return time.Duration(min(s, 3600)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := time.Until(t); d > 0 {
			return min(d, time.Hour)
		}
	}
	return 0
}
