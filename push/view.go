package push

import "encoding/json"

// The JSON shapes of the push API: Sockudo's (camelCase fields, lists as {items,
// next_cursor, has_more}), plus publish_id beside publishId as sockudo clients read either.

// DeviceView is a device as the API shows it (Sockudo's DeviceResponse): never its token,
// only the token's hash.
type DeviceView struct {
	AppID            string          `json:"appId"`
	ID               string          `json:"id"`
	ClientID         string          `json:"clientId,omitempty"`
	FormFactor       string          `json:"formFactor"`
	Platform         string          `json:"platform"`
	Timezone         string          `json:"timezone"`
	Locale           string          `json:"locale"`
	Metadata         json.RawMessage `json:"metadata,omitempty"`
	LastActiveAtMs   int64           `json:"lastActiveAtMs"`
	PushState        string          `json:"pushState"`
	PushFailureCount int             `json:"pushFailureCount"`
	ErrorReason      string          `json:"errorReason,omitempty"`
	Recipient        RecipientView   `json:"recipient"`
}

// RecipientView describes how a device is reached.
type RecipientView struct {
	TransportType string `json:"transportType"`
	Provider      string `json:"provider"`
	TokenHash     string `json:"tokenHash"`
}

// ViewDevice returns the API view of d.
func ViewDevice(d *Device) DeviceView {
	state := d.State
	if state == "" {
		state = StateActive
	}
	return DeviceView{AppID: d.AppID, ID: d.ID, ClientID: d.ClientID, FormFactor: d.FormFactor, Platform: d.OS,
		Timezone: d.Timezone, Locale: d.Locale, Metadata: d.Metadata, LastActiveAtMs: d.UpdatedAt.UnixMilli(),
		PushState: state, PushFailureCount: d.FailureCount, ErrorReason: d.ErrorReason,
		Recipient: RecipientView{TransportType: d.Platform.transportType(), Provider: d.Platform.providerName(), TokenHash: d.TokenHash()}}
}

// RegistrationView is the answer to a device registration.
type RegistrationView struct {
	Change              string     `json:"change"`
	TokenHash           string     `json:"tokenHash"`
	Device              DeviceView `json:"device"`
	DeviceIdentityToken string     `json:"deviceIdentityToken,omitempty"`
}

// ViewRegistration returns the API view of r.
func ViewRegistration(r *Registration) RegistrationView {
	return RegistrationView{Change: r.Change, TokenHash: r.Device.TokenHash(), Device: ViewDevice(r.Device), DeviceIdentityToken: r.Token}
}

// SubscriptionView is an interest as the API shows it (Sockudo's ChannelSubscription).
type SubscriptionView struct {
	AppID     string `json:"appId"`
	Channel   string `json:"channel"`
	DeviceID  string `json:"deviceId,omitempty"`
	ClientID  string `json:"clientId,omitempty"`
	Provider  string `json:"provider,omitempty"`
	TokenHash string `json:"tokenHash,omitempty"`
}

// ViewSubscription returns the API view of s; d is its device (nil for a user interest).
func ViewSubscription(s Subscription, d *Device) SubscriptionView {
	v := SubscriptionView{AppID: s.AppID, Channel: s.Channel, DeviceID: s.DeviceID, ClientID: s.ClientID}
	if d != nil {
		v.ClientID, v.Provider, v.TokenHash = d.ClientID, d.Platform.providerName(), d.TokenHash()
	}
	return v
}

// List is a page of a list.
type List[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
	HasMore    bool    `json:"has_more"`
}

// NewList returns the page items with its next cursor ("" at the end).
func NewList[T any](items []T, next string) List[T] {
	l := List[T]{Items: items, HasMore: next != ""}
	if l.Items == nil {
		l.Items = []T{}
	}
	if next != "" {
		l.NextCursor = &next
	}
	return l
}

// AcceptedView is the 202 answer to a publish (Sockudo's PublishAcceptedResponse).
type AcceptedView struct {
	PublishID  string `json:"publishId"`
	PublishID2 string `json:"publish_id"`
	Status     string `json:"status"`
	// ExpectedRecipients is the planned recipient count; 0 until the publish is planned
	// (Sockudo: zero means not yet known).
	ExpectedRecipients int    `json:"expectedRecipients"`
	FanoutRegime       string `json:"fanoutRegime"`
	NotBeforeMs        int64  `json:"notBeforeMs,omitempty"`
	ExpiresAtMs        int64  `json:"expiresAtMs,omitempty"`
}

// ViewAccepted returns the publish answer of p.
func ViewAccepted(p *Publish) AcceptedView {
	v := AcceptedView{PublishID: p.ID, PublishID2: p.ID, Status: p.State, ExpectedRecipients: p.Counters.Planned, FanoutRegime: "fastPath"}
	if p.State == PublishScheduled {
		v.NotBeforeMs = p.Due.UnixMilli()
	}
	if !p.Request.ExpiresAt.IsZero() {
		v.ExpiresAtMs = p.Request.ExpiresAt.UnixMilli()
	}
	return v
}

// StatusView is GET .../publish/{id}/status: Sockudo's PublishStatus plus the
// per-recipient results (paged by device id) and the receipts.
type StatusView struct {
	AppID          string          `json:"appId"`
	PublishID      string          `json:"publishId"`
	PublishID2     string          `json:"publish_id"`
	State          string          `json:"state"`
	Counters       countersView    `json:"counters"`
	FanoutRegime   string          `json:"fanoutRegime"`
	ErrorReason    string          `json:"errorReason,omitempty"`
	CreatedAtMs    int64           `json:"createdAtMs"`
	NotBeforeMs    int64           `json:"notBeforeMs,omitempty"`
	ExpiresAtMs    int64           `json:"expiresAtMs,omitempty"`
	Recipients     []RecipientLine `json:"recipients"`
	NextCursor     *string         `json:"next_cursor"`
	HasMore        bool            `json:"has_more"`
	DeliveryEvents []DeliveryEvent `json:"deliveryEvents"`
}

type countersView struct {
	Planned        int `json:"planned"`
	Dispatched     int `json:"dispatched"`
	Succeeded      int `json:"succeeded"`
	Failed         int `json:"failed"`
	Expired        int `json:"expired"`
	RetryScheduled int `json:"retryScheduled"`
	TokensRemoved  int `json:"tokensRemoved"`
}

// RecipientLine is one recipient's delivery result.
type RecipientLine struct {
	DeviceID          string `json:"deviceId"`
	ClientID          string `json:"clientId,omitempty"`
	Platform          string `json:"platform"`
	State             string `json:"state"`
	Attempts          int    `json:"attempts"`
	ProviderMessageID string `json:"providerMessageId,omitempty"`
	ProviderStatus    int    `json:"providerStatus,omitempty"`
	Reason            string `json:"reason,omitempty"`
	TokenRemoved      bool   `json:"tokenRemoved,omitempty"`
	NextAttemptAtMs   int64  `json:"nextAttemptAtMs,omitempty"`
	UpdatedAtMs       int64  `json:"updatedAtMs"`
}

// ViewStatus returns the status answer.
func ViewStatus(p *Publish, ds []*Delivery, next string, evs []*DeliveryEvent) StatusView {
	c := p.Counters
	v := StatusView{AppID: p.AppID, PublishID: p.ID, PublishID2: p.ID, State: p.State, FanoutRegime: "fastPath",
		Counters: countersView{Planned: c.Planned, Dispatched: c.Succeeded + c.Failed, Succeeded: c.Succeeded, Failed: c.Failed,
			Expired: c.Expired, RetryScheduled: c.Retries, TokensRemoved: c.Removed},
		ErrorReason: p.Error, CreatedAtMs: p.CreatedAt.UnixMilli(), Recipients: []RecipientLine{}, HasMore: next != "",
		DeliveryEvents: []DeliveryEvent{}}
	if p.State == PublishScheduled || p.State == PublishCancelled {
		v.NotBeforeMs = p.Due.UnixMilli()
	}
	if !p.Request.ExpiresAt.IsZero() {
		v.ExpiresAtMs = p.Request.ExpiresAt.UnixMilli()
	}
	if next != "" {
		v.NextCursor = &next
	}
	for _, d := range ds {
		l := RecipientLine{DeviceID: d.DeviceID, ClientID: d.ClientID, Platform: string(d.Platform), State: d.State,
			Attempts: d.Attempts, ProviderMessageID: d.ProviderID, ProviderStatus: d.Status, Reason: d.Reason,
			TokenRemoved: d.TokenRemoved, UpdatedAtMs: d.UpdatedAt.UnixMilli()}
		if d.State == DeliveryPending && d.Attempts > 0 {
			l.NextAttemptAtMs = d.Due.UnixMilli()
		}
		v.Recipients = append(v.Recipients, l)
	}
	for _, e := range evs {
		v.DeliveryEvents = append(v.DeliveryEvents, *e)
	}
	return v
}
