package push

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"
)

// The realtime bridge. RealtimePublished is the hook the HTTP publish path calls after a
// publish; it only queues (a full queue drops the event and logs), so a publish never waits
// on push. One goroutine then handles each event:
//
//   - an event whose extras carry "push" (Sockudo's extras.push: a PushPayload) is pushed to
//     every interest of the channel, as Sockudo does;
//   - otherwise, when the app's bridge is on and the channel and event match it, the event is
//     pushed to the channel's subscribed users who have no live socket on the channel
//     (Presence.UserOnChannel): user interests, and device interests of devices that belong
//     to a user. Devices without a user are skipped: nothing tells whether they are online.
//
// Bridge publishes are ordinary publishes (ids "bridge-..."), visible in publish status.

// bridgeEvent is one realtime publish on one channel.
type bridgeEvent struct {
	appID, channel, event, data string
	push                        json.RawMessage
}

// RealtimePublished queues a realtime publish for the bridge. It never blocks.
func (s *Service) RealtimePublished(appID, channel, event, data string, extras []byte) {
	cfg := s.apps[appID]
	if cfg == nil || !cfg.enabled {
		return
	}
	var pushPayload json.RawMessage
	if len(extras) > 0 && bytes.Contains(extras, []byte(`"push"`)) {
		var x struct {
			Push json.RawMessage `json:"push"`
		}
		if json.Unmarshal(extras, &x) == nil && len(x.Push) > 0 && x.Push[0] == '{' {
			pushPayload = x.Push
		}
	}
	if pushPayload == nil && (!cfg.bridge.Enabled || s.presence == nil || !bridged(cfg, channel, event)) {
		return
	}
	select {
	case s.bridgeQ <- bridgeEvent{appID, channel, event, data, pushPayload}:
	default:
		s.log.Warn("push bridge queue full: realtime publish not pushed", zap.String("app_id", appID), zap.String("channel", channel))
	}
}

func bridged(cfg *appCfg, channel, event string) bool {
	if len(cfg.bridge.Events) > 0 && !contains(cfg.bridge.Events, event) {
		return false
	}
	if len(cfg.bridge.Channels) == 0 {
		return true
	}
	for _, p := range cfg.bridge.Channels {
		if strings.HasPrefix(channel, p) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Service) runBridge() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case ev := <-s.bridgeQ:
			if err := s.Bridge(s.ctx, ev.appID, ev.channel, ev.event, ev.data, ev.push); err != nil && s.ctx.Err() == nil {
				s.log.Warn("push bridge failed", zap.String("app_id", ev.appID), zap.String("channel", ev.channel), zap.Error(err))
			}
		}
	}
}

// Bridge handles one realtime publish synchronously (the bridge goroutine calls it; tests
// call it directly): see the package comment above.
func (s *Service) Bridge(ctx context.Context, appID, channel, event, data string, pushPayload json.RawMessage) error {
	if pushPayload != nil {
		var p Payload
		if err := json.Unmarshal(pushPayload, &p); err != nil {
			return err
		}
		if perr := checkPayload(&p); perr != nil {
			return perr
		}
		_, perr := s.Publish(ctx, appID, &Request{PublishID: "extras-" + newID(), Targets: []Target{{Kind: TargetChannel, ID: channel}}, Payload: p})
		if perr != nil {
			return perr
		}
		return nil
	}
	cfg := s.apps[appID]
	payload := s.bridgePayload(cfg, channel, event, data)
	var targets []Target
	flush := func() error {
		if len(targets) == 0 {
			return nil
		}
		_, perr := s.Publish(ctx, appID, &Request{PublishID: "bridge-" + newID(), Targets: targets, Payload: payload})
		targets = nil
		if perr != nil {
			return perr
		}
		return nil
	}
	after := ""
	for {
		subs, err := s.store.ListSubscriptions(ctx, appID, Filter{Channel: channel}, after, planPage)
		if err != nil {
			return err
		}
		if len(subs) == 0 {
			break
		}
		var ids []string
		for _, sb := range subs {
			if sb.DeviceID != "" {
				ids = append(ids, sb.DeviceID)
			} else if !s.presence.UserOnChannel(appID, channel, sb.ClientID) {
				targets = append(targets, Target{Kind: TargetClient, ID: sb.ClientID})
			}
		}
		devs, err := s.store.GetDevices(ctx, appID, ids)
		if err != nil {
			return err
		}
		for _, d := range devs {
			if d.ClientID != "" && !s.presence.UserOnChannel(appID, channel, d.ClientID) {
				targets = append(targets, Target{Kind: TargetDevice, ID: d.ID})
			}
		}
		// One publish per page of interests: at most planPage (< MaxTargets) targets.
		if err := flush(); err != nil {
			return err
		}
		after = subs[len(subs)-1].key()
	}
	return flush()
}

// bridgePayload is the notification of a bridged event: the configured title and body (by
// default the event name, and the data when it is short text), and templateData with the
// channel, the event and the data when it fits.
func (s *Service) bridgePayload(cfg *appCfg, channel, event, data string) Payload {
	p := Payload{Title: cfg.bridge.Title, Body: cfg.bridge.Body}
	if p.Title == "" {
		p.Title = event
	}
	if p.Body == "" && len(data) <= 200 && utf8.ValidString(data) && !json.Valid([]byte(data)) {
		p.Body = data
	}
	d := map[string]string{"channel": channel, "event": event}
	if len(data) <= 2048 {
		d["data"] = data
	}
	p.Data = marshal(d)
	if CheckPayload(&p, nil) != nil {
		delete(d, "data")
		p.Data = marshal(d)
	}
	return p
}
