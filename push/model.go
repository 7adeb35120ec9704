package push

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Platform is the push provider a device is reached through.
type Platform string

// The platforms pushwire delivers to.
const (
	APNs Platform = "apns"
	FCM  Platform = "fcm"
	Web  Platform = "web"
)

// Platforms lists every platform, in the order reports use.
var Platforms = []Platform{APNs, FCM, Web}

// transportType is Sockudo's name of a platform in push.recipient.transportType.
func (p Platform) transportType() string {
	if p == FCM {
		return "gcm"
	}
	return string(p)
}

// providerName is Sockudo's PushProviderKind spelling (fcm, apns, webPush).
func (p Platform) providerName() string {
	if p == Web {
		return "webPush"
	}
	return string(p)
}

// Device states, as Sockudo spells them.
const (
	StateActive  = "ACTIVE"
	StateFailing = "FAILING"
)

// Device is one registered device: how to reach it and whom it belongs to.
type Device struct {
	AppID string
	ID    string
	// ClientID is the user the device belongs to ("" for an anonymous device).
	ClientID string
	Platform Platform
	// Token is the APNs device token (lowercase hex) or the FCM registration token.
	Token string
	// Web is the Web Push subscription (Platform Web only).
	Web *WebSubscription
	// FormFactor and OS are Sockudo's descriptive formFactor and platform (phone, ios...).
	FormFactor string
	OS         string
	Timezone   string
	Locale     string
	Metadata   json.RawMessage
	// SecretHash is the hash of the device identity token (see identity.go).
	SecretHash   string
	State        string
	FailureCount int
	ErrorReason  string
	UpdatedAt    time.Time
}

// WebSubscription is a browser's PushSubscription: its endpoint and keys (base64url).
type WebSubscription struct {
	Endpoint string `json:"endpoint"`
	P256dh   string `json:"p256dh"`
	Auth     string `json:"auth"`
}

// address is what identifies the device at its provider.
func (d *Device) address() string {
	if d.Web != nil {
		return d.Web.Endpoint
	}
	return d.Token
}

// TokenHash is a stable hash of the device's provider address (never the address itself).
func (d *Device) TokenHash() string {
	sum := sha256.Sum256([]byte(string(d.Platform) + ":" + d.address()))
	return hex.EncodeToString(sum[:16])
}

// Subscription is an interest: a device, or every device of a user, subscribed to a channel.
type Subscription struct {
	AppID   string
	Channel string
	// DeviceID is set for a device subscription, ClientID alone for a user subscription.
	DeviceID string
	ClientID string
}

// key orders subscriptions of one channel: device ones ("d:" id) before user ones ("u:" id).
func (s Subscription) key() string {
	if s.DeviceID != "" {
		return "d:" + s.DeviceID
	}
	return "u:" + s.ClientID
}

// Payload is a notification, provider-neutral (Sockudo's PushPayload).
type Payload struct {
	Title       string          `json:"title,omitempty"`
	Body        string          `json:"body,omitempty"`
	Icon        string          `json:"icon,omitempty"`
	Sound       string          `json:"sound,omitempty"`
	CollapseKey string          `json:"collapseKey,omitempty"`
	Data        json.RawMessage `json:"templateData,omitempty"`
}

// TargetKind is what a publish target names.
type TargetKind string

// The publish target kinds.
const (
	TargetDevice  TargetKind = "device"
	TargetClient  TargetKind = "client"
	TargetChannel TargetKind = "channel"
)

// Target is one recipient set of a publish.
type Target struct {
	Kind TargetKind `json:"type"`
	// ID is the device id, client (user) id or channel name.
	ID string `json:"id"`
}

// Request is one publish: whom, what, when.
type Request struct {
	PublishID string
	Targets   []Target
	Payload   Payload
	// Overrides replace the rendered payload of one platform (Sockudo providerOverrides).
	Overrides map[Platform]json.RawMessage
	// NotBefore schedules the publish (zero: now). ExpiresAt drops what is undelivered by
	// then (zero: the app's retry window).
	NotBefore time.Time
	ExpiresAt time.Time
}

// Publish states, as Sockudo labels them.
const (
	PublishScheduled          = "scheduled"
	PublishAccepted           = "accepted"
	PublishPlanning           = "planning"
	PublishDispatching        = "dispatching"
	PublishSucceeded          = "succeeded"
	PublishPartiallySucceeded = "partially_succeeded"
	PublishFailed             = "failed"
	PublishCancelled          = "cancelled"
	PublishExpired            = "expired"
)

// Counters count a publish's recipients by outcome.
type Counters struct {
	Planned   int `json:"planned"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Expired   int `json:"expired"`
	Retries   int `json:"retryScheduled"`
	Removed   int `json:"tokensRemoved"`
}

// Publish is a stored publish: its request, state, counters and expansion progress.
type Publish struct {
	AppID     string
	ID        string
	Request   Request
	State     string
	Counters  Counters
	CreatedAt time.Time
	// Due is when planning may start (NotBefore, or the creation time).
	Due time.Time
	// Cursor is the expansion progress of a publish being planned (plan.go).
	Cursor string
	// LeaseUntil is when a node's claim on planning it lapses.
	LeaseUntil time.Time
	// Error explains a publish that failed as a whole.
	Error string
}

// terminal reports whether the publish is finished.
func (p *Publish) terminal() bool {
	switch p.State {
	case PublishSucceeded, PublishPartiallySucceeded, PublishFailed, PublishCancelled, PublishExpired:
		return true
	}
	return false
}

// settle moves a fully planned publish to its final state once every recipient has an
// outcome.
func (p *Publish) settle() {
	if p.State != PublishDispatching {
		return
	}
	c := p.Counters
	if c.Succeeded+c.Failed+c.Expired < c.Planned {
		return
	}
	switch {
	case c.Planned == 0:
		p.State = PublishSucceeded
	case c.Failed == 0 && c.Expired == 0:
		p.State = PublishSucceeded
	case c.Succeeded > 0:
		p.State = PublishPartiallySucceeded
	case c.Failed == 0:
		p.State = PublishExpired
	default:
		p.State = PublishFailed
	}
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
	DeliveryExpired   = "expired"
)

// Delivery is one recipient device of one publish: the unit of the outbound queue.
type Delivery struct {
	AppID     string
	PublishID string
	DeviceID  string
	ClientID  string
	Platform  Platform
	State     string
	Attempts  int
	Due       time.Time
	// LeaseUntil is when a claim on the delivery lapses (zero: not claimed).
	LeaseUntil time.Time
	ExpiresAt  time.Time
	// ProviderID is the provider's message id once delivered (apns-id, FCM name).
	ProviderID string
	// Status and Reason describe the last provider answer of a failure or retry.
	Status int
	Reason string
	// TokenRemoved is set when the provider said the token is gone and the device was
	// removed.
	TokenRemoved bool
	UpdatedAt    time.Time
}

// DeliveryEvent is a delivery receipt reported by the app (POST .../deliveryStatus).
type DeliveryEvent struct {
	AppID      string          `json:"appId"`
	PublishID  string          `json:"publishId"`
	EventID    string          `json:"eventId"`
	OccurredAt int64           `json:"occurredAtMs"`
	Result     json.RawMessage `json:"result"`
}

// Outcome is what a provider made of one send.
type Outcome int

// The send outcomes.
const (
	// Delivered: the provider accepted the notification.
	Delivered Outcome = iota
	// Retry: a transient failure (5xx, 429, network): try again later.
	Retry
	// Unregistered: the token is no longer valid; the device is removed.
	Unregistered
	// Rejected: a permanent failure (bad payload, credentials, configuration).
	Rejected
)

// String names the outcome for metrics.
func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Unregistered:
		return "unregistered"
	}
	return "rejected"
}

// Result is a provider's answer to one send.
type Result struct {
	Outcome Outcome
	// Status is the provider's HTTP status (0 when none came back).
	Status int
	// Reason is the provider's reason (BadDeviceToken, UNREGISTERED...) or our explanation.
	Reason string
	// RetryAfter is the provider's Retry-After, when it sent one.
	RetryAfter time.Duration
	// ID is the provider's message id on success.
	ID string
}

func (r Result) String() string {
	if r.Status != 0 {
		return fmt.Sprintf("%s (HTTP %d: %s)", r.Outcome, r.Status, r.Reason)
	}
	return fmt.Sprintf("%s (%s)", r.Outcome, r.Reason)
}
