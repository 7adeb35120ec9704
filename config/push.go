package config

import (
	"fmt"
	"net/url"
	"time"
)

// AppPush is an app's push-notification settings (the /apps/{id}/push/* API, the outbound
// queue and its providers).
type AppPush struct {
	// Enabled turns the push API and delivery on. Default false; true for the embedded
	// default app.
	Enabled *bool `yaml:"enabled"`
	// RateLimitPerSecond caps deliveries sent to providers per second for the app; excess
	// deliveries wait in the queue. 0 = unlimited (default).
	RateLimitPerSecond int `yaml:"rate_limit_per_second"`
	// PublishesPerSecond caps publish requests accepted per second (429 over it). 0 =
	// unlimited (default).
	PublishesPerSecond int `yaml:"publishes_per_second"`
	// RetryInitialBackoff is the wait before the first retry of a retryable provider answer
	// (5xx, 429, network error); each retry doubles it. Default 1s.
	RetryInitialBackoff Duration `yaml:"retry_initial_backoff"`
	// RetryMaxBackoff caps one retry wait. Default 60s.
	RetryMaxBackoff Duration `yaml:"retry_max_backoff"`
	// RetryFor is how long after its publish a delivery is still retried (and the default
	// expiry of a publish). Default 1h.
	RetryFor Duration `yaml:"retry_for"`
	// MaxAttempts caps the sends of one delivery; 0 = unlimited within retry_for (default).
	MaxAttempts int `yaml:"max_attempts"`
	// AllowPrivateEndpoints accepts Web Push endpoints on loopback and private networks.
	// Default false.
	AllowPrivateEndpoints bool `yaml:"allow_private_endpoints"`
	// APNs, FCM and Web are the provider credentials; a platform without them fails its
	// deliveries with a clear reason. Default none.
	APNs *PushAPNs `yaml:"apns"`
	FCM  *PushFCM  `yaml:"fcm"`
	Web  *PushWeb  `yaml:"web"`
	// Bridge sends a push for realtime publishes to subscribed users without a live socket
	// on the channel. Default off.
	Bridge PushBridge `yaml:"bridge"`
}

// PushAPNs are Apple Push Notification service token-auth (.p8) credentials.
type PushAPNs struct {
	// TeamID and KeyID identify the signing key (Apple developer account). Required.
	TeamID string `yaml:"team_id"`
	KeyID  string `yaml:"key_id"`
	// PrivateKey is the .p8 PEM; PrivateKeyFile reads it from a file. One is required.
	PrivateKey     string `yaml:"private_key"`
	PrivateKeyFile string `yaml:"private_key_file"`
	// Topic is the app's bundle id (apns-topic). Required.
	Topic string `yaml:"topic"`
	// Production sends to api.push.apple.com; default false: the sandbox.
	Production bool `yaml:"production"`
	// Endpoint overrides the APNs base URL (tests, proxies). Default: Apple's.
	Endpoint string `yaml:"endpoint"`
	// CAFile is a PEM bundle trusted besides the system roots (private gateways, tests).
	CAFile string `yaml:"ca_file"`
}

// PushFCM are Firebase Cloud Messaging HTTP v1 credentials: a service account.
type PushFCM struct {
	// ServiceAccountFile (or ServiceAccountJSON) is the service account key JSON; its
	// token_uri is where OAuth2 tokens are fetched. One is required.
	ServiceAccountFile string `yaml:"service_account_file"`
	ServiceAccountJSON string `yaml:"service_account_json"`
	// ProjectID defaults to the service account's project_id.
	ProjectID string `yaml:"project_id"`
	// Endpoint overrides https://fcm.googleapis.com (tests, proxies).
	Endpoint string `yaml:"endpoint"`
	// CAFile is a PEM bundle trusted besides the system roots (private gateways, tests).
	CAFile string `yaml:"ca_file"`
}

// PushWeb are Web Push VAPID credentials (RFC 8292), base64url.
type PushWeb struct {
	// VAPIDPublicKey (65-byte uncompressed P-256 point) and VAPIDPrivateKey (32 bytes).
	VAPIDPublicKey  string `yaml:"vapid_public_key"`
	VAPIDPrivateKey string `yaml:"vapid_private_key"`
	// Subject is the VAPID contact: a mailto: address or an https URL. Required.
	Subject string `yaml:"subject"`
	// CAFile is a PEM bundle trusted besides the system roots for push service endpoints.
	CAFile string `yaml:"ca_file"`
}

// PushBridge is the realtime-to-push offline fallback of an app.
type PushBridge struct {
	// Enabled turns the bridge on. Default false.
	Enabled bool `yaml:"enabled"`
	// Channels limits the bridge to channels starting with one of these prefixes. Default
	// empty: every channel.
	Channels []string `yaml:"channels"`
	// Events limits the bridge to these event names. Default empty: every event.
	Events []string `yaml:"events"`
	// Title and Body of the notification; default: the event name and, for short text
	// data, the data itself.
	Title string `yaml:"title"`
	Body  string `yaml:"body"`
}

// Defaults of the push settings.
const (
	DefaultPushRetryInitialBackoff = time.Second
	DefaultPushRetryMaxBackoff     = 60 * time.Second
	DefaultPushRetryFor            = time.Hour
)

// PushOn reports whether the app has push enabled.
func (a *App) PushOn() bool { return a.Push.Enabled != nil && *a.Push.Enabled }

// applyPushDefaults fills the app's zero push settings.
func (p *AppPush) applyDefaults() {
	setDur(&p.RetryInitialBackoff, DefaultPushRetryInitialBackoff)
	setDur(&p.RetryMaxBackoff, DefaultPushRetryMaxBackoff)
	setDur(&p.RetryFor, DefaultPushRetryFor)
}

// pushProblems validates the push settings of app p (prefix apps[i]).
func (c *Config) pushProblems(bad func(field, format string, args ...any)) {
	switch c.PushStore {
	case "memory":
	case "postgres":
		if c.DatabaseURL == "" {
			bad("database_url", "is required with push_store: postgres")
		}
	default:
		bad("push_store", "must be memory or postgres, got %q", c.PushStore)
	}
	for i, a := range c.Apps {
		p := fmt.Sprintf("apps[%d].push", i)
		ap := a.Push
		if ap.RateLimitPerSecond < 0 || ap.PublishesPerSecond < 0 || ap.MaxAttempts < 0 {
			bad(p, "rate_limit_per_second, publishes_per_second and max_attempts must not be negative")
		}
		if ap.RetryInitialBackoff.D() <= 0 || ap.RetryMaxBackoff.D() < ap.RetryInitialBackoff.D() || ap.RetryFor.D() <= 0 {
			bad(p, "retry_initial_backoff and retry_for must be positive and retry_max_backoff at least retry_initial_backoff")
		}
		if x := ap.APNs; x != nil {
			if x.TeamID == "" || x.KeyID == "" || x.Topic == "" || (x.PrivateKey == "") == (x.PrivateKeyFile == "") {
				bad(p+".apns", "needs team_id, key_id, topic and one of private_key or private_key_file")
			}
			checkURL(bad, p+".apns.endpoint", x.Endpoint)
		}
		if x := ap.FCM; x != nil {
			if (x.ServiceAccountFile == "") == (x.ServiceAccountJSON == "") {
				bad(p+".fcm", "needs one of service_account_file or service_account_json")
			}
			checkURL(bad, p+".fcm.endpoint", x.Endpoint)
		}
		if x := ap.Web; x != nil && (x.VAPIDPublicKey == "" || x.VAPIDPrivateKey == "" || x.Subject == "") {
			bad(p+".web", "needs vapid_public_key, vapid_private_key and subject")
		}
	}
}

func checkURL(bad func(field, format string, args ...any), field, s string) {
	if s == "" {
		return
	}
	if u, err := url.Parse(s); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad(field, "must be an absolute http:// or https:// URL, got %q", s)
	}
}
