package webhook

import "encoding/json"

// typeMemberUpdated is the webhook of a V2 presence_update.
const typeMemberUpdated = "member_updated"

// MemberUpdated implements channels.PresenceUpdateObserver: member_updated
// {"name","channel","user_id","user_info"} (Sockudo's shape), sent by the node where the
// presence_update happened.
func (s *Sender) MemberUpdated(appID, channel, userID string, info json.RawMessage) {
	s.emit(appID, typeMemberUpdated, channel, func() []byte {
		if len(info) == 0 || !json.Valid(info) {
			info = json.RawMessage("{}")
		}
		return encode(struct {
			Name     string          `json:"name"`
			Channel  string          `json:"channel"`
			UserID   string          `json:"user_id"`
			UserInfo json.RawMessage `json:"user_info"`
		}{typeMemberUpdated, channel, userID, info})
	})
}
