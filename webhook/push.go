package webhook

// typePushFailed is the webhook event of a push delivery that failed for good.
const typePushFailed = "push_delivery_failed"

// PushDeliveryFailed implements push.FailureObserver: push_delivery_failed, sent to the
// endpoints that list it (the event has no channel: an endpoint with a channel_prefix never
// gets it).
//
//	{"name":"push_delivery_failed","publish_id":"...","device_id":"...","user_id":"...",
//	 "platform":"apns","reason":"Unregistered","token_removed":true}
func (s *Sender) PushDeliveryFailed(appID, publishID, deviceID, userID, platform, reason string, tokenRemoved bool) {
	s.emit(appID, typePushFailed, "", func() []byte {
		return encode(struct {
			Name         string `json:"name"`
			PublishID    string `json:"publish_id"`
			DeviceID     string `json:"device_id"`
			UserID       string `json:"user_id,omitempty"`
			Platform     string `json:"platform"`
			Reason       string `json:"reason"`
			TokenRemoved bool   `json:"token_removed"`
		}{typePushFailed, publishID, deviceID, userID, platform, reason, tokenRemoved})
	})
}
