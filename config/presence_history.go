package config

import (
	"fmt"
	"time"
)

// AppPresenceHistory is an app's presence-history settings: every member_added,
// member_updated and member_removed of its presence channels stored as an event with its own
// per-channel serial (GET /apps/{id}/channels/{ch}/presence/history, .../snapshot).
type AppPresenceHistory struct {
	// Enabled records the membership changes of the app's presence channels. Default false;
	// true for the embedded default app.
	Enabled *bool `yaml:"enabled"`
	// RetentionWindow drops events older than this. Default 24h.
	RetentionWindow Duration `yaml:"retention_window"`
	// MaxEventsPerChannel caps the retained events of one channel (oldest dropped first).
	// Default 10000.
	MaxEventsPerChannel int `yaml:"max_events_per_channel"`
	// MaxBytesPerChannel caps the retained bytes (stored presence_event JSON) of one channel.
	// 0 = no byte bound (default).
	MaxBytesPerChannel int64 `yaml:"max_bytes_per_channel"`
}

// Defaults of AppPresenceHistory.
const (
	DefaultPresenceHistoryRetention = 24 * time.Hour
	DefaultPresenceHistoryMaxEvents = 10000
)

// On reports whether presence history is enabled.
func (p *AppPresenceHistory) On() bool { return p.Enabled != nil && *p.Enabled }

func (p *AppPresenceHistory) applyDefaults() {
	if p.Enabled == nil {
		off := false
		p.Enabled = &off
	}
	setDur(&p.RetentionWindow, DefaultPresenceHistoryRetention)
	setInt(&p.MaxEventsPerChannel, DefaultPresenceHistoryMaxEvents)
}

// member_updated (a V2 presence_update replaced a member's user_info) is a webhook event
// type too; it is added here, beside the presence settings, rather than in the list itself.
func init() { WebhookEventTypes = append(WebhookEventTypes, "member_updated") }

// presenceHistoryProblems reports invalid presence-history settings of each app.
func (c *Config) presenceHistoryProblems(bad func(field, format string, args ...any)) {
	for i, a := range c.Apps {
		p := a.PresenceHistory
		f := fmt.Sprintf("apps[%d].presence_history.", i)
		if p.RetentionWindow.D() <= 0 {
			bad(f+"retention_window", "must be positive")
		}
		if p.MaxEventsPerChannel <= 0 {
			bad(f+"max_events_per_channel", "must be positive, got %d", p.MaxEventsPerChannel)
		}
		if p.MaxBytesPerChannel < 0 {
			bad(f+"max_bytes_per_channel", "must not be negative, got %d", p.MaxBytesPerChannel)
		}
	}
}
