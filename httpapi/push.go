package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/push"
)

// PublishHook is told about every HTTP publish once it was delivered (the push bridge:
// *push.Service). It must not block.
type PublishHook interface {
	RealtimePublished(appID, channel, event, data string, extras []byte)
}

// notifyPublished hands a delivered publish to the hook, one call per channel. Ephemeral
// messages are live-only and never bridged.
func (a *api) notifyPublished(appID string, ev channels.Event) {
	if a.hook == nil || ev.Ephemeral {
		return
	}
	for _, ch := range ev.Channels {
		a.hook.RealtimePublished(appID, ch, ev.Name, ev.Data, ev.Extras)
	}
}

// Headers of the push API (Sockudo's).
const (
	headerPushCapability = "X-Sockudo-Push-Capability"
	headerDeviceToken    = "X-Sockudo-Device-Identity-Token"
	headerRotateToken    = "X-Sockudo-Rotate-Device-Identity-Token"
)

// pushRequest is what pushAuth hands to the push handlers.
type pushRequest struct {
	app    config.App
	body   []byte
	caller push.Caller
}

type pushCtxKey struct{}

// mountPush routes Sockudo's /apps/{appID}/push/* surface (when a push service is set).
func (a *api) mountPush(r chi.Router) {
	if a.push == nil {
		return
	}
	r.Group(func(r chi.Router) {
		r.Use(a.pushAuth)
		const p = "/apps/{appID}/push"
		r.Post(p+"/deviceRegistrations", a.pushRegister)
		r.Get(p+"/deviceRegistrations", a.pushListDevices)
		r.Delete(p+"/deviceRegistrations", a.pushDeleteDevicesOfClient)
		r.Get(p+"/deviceRegistrations/{deviceID}", a.pushGetDevice)
		r.Delete(p+"/deviceRegistrations/{deviceID}", a.pushDeleteDevice)
		r.Post(p+"/channelSubscriptions", a.pushSubscribe)
		r.Get(p+"/channelSubscriptions", a.pushListSubscriptions)
		r.Delete(p+"/channelSubscriptions", a.pushUnsubscribe)
		r.Get(p+"/channelSubscriptions/channels", a.pushListChannels)
		r.Post(p+"/publish", a.pushPublish)
		r.Post(p+"/batch/publish", a.pushBatch)
		r.Get(p+"/publish/{publishID}/status", a.pushStatus)
		r.Delete(p+"/scheduled/{publishID}", a.pushCancel)
		r.Post(p+"/deliveryStatus", a.pushDeliveryStatus)
		r.Get(p+"/credentials", a.pushCredentials)
	})
}

// pushAuth admits a request signed with the app secret (push-admin, or push-subscribe when
// X-Sockudo-Push-Capability says so, which then also needs the device's identity token) or
// an unsigned request carrying a device identity token (X-Sockudo-Device-Identity-Token or
// Authorization: Bearer), which may only manage that device.
func (a *api) pushAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pr, aerr := a.pushCaller(r)
		if aerr != nil {
			fail(w, aerr)
			return
		}
		if !a.push.Enabled(pr.app.ID) {
			writeError(w, http.StatusNotFound, "push_not_enabled", "Push notifications are not enabled for app "+pr.app.ID+" (apps[].push.enabled)")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), pushCtxKey{}, pr)))
	})
}

func (a *api) pushCaller(r *http.Request) (*pushRequest, *apiError) {
	token := push.BearerToken(r.Header.Get(headerDeviceToken), r.Header.Get("Authorization"))
	q := r.URL.Query()
	if q.Has("auth_signature") || q.Has("auth_key") || token == "" {
		s, aerr := a.verify(r, true)
		if aerr != nil {
			if token == "" && !q.Has("auth_key") {
				return nil, authFailed("A signed request (auth_key, auth_timestamp, auth_signature) or a device identity token (%s) is required", headerDeviceToken)
			}
			return nil, aerr
		}
		pr := &pushRequest{app: s.app, body: s.body, caller: push.Caller{Admin: true}}
		switch r.Header.Get(headerPushCapability) {
		case "", "push-admin":
		case "push-subscribe":
			pr.caller = push.Caller{Token: token}
		default:
			return nil, &apiError{http.StatusForbidden, "forbidden", "Unknown push capability " + r.Header.Get(headerPushCapability) + ": use push-admin or push-subscribe"}
		}
		return pr, nil
	}
	id, err := pathParam(r, "appID")
	if err != nil {
		return nil, badRequest("%v", err)
	}
	app, ok := a.hub.AppByID(id)
	if !ok {
		return nil, &apiError{http.StatusNotFound, codeAppNotFound, "Application " + id + " not found"}
	}
	body, aerr := a.readBody(r)
	if aerr != nil {
		return nil, aerr
	}
	return &pushRequest{app: app, body: body, caller: push.Caller{Token: token}}, nil
}

func pushOf(r *http.Request) *pushRequest {
	pr, _ := r.Context().Value(pushCtxKey{}).(*pushRequest)
	if pr == nil {
		panic("httpapi: push handler reached without pushAuth")
	}
	return pr
}

// pushFail answers a push error.
func (a *api) pushFail(w http.ResponseWriter, e *push.Error) {
	status, code := http.StatusInternalServerError, codeInternal
	switch e.Kind {
	case push.Invalid:
		status, code = http.StatusBadRequest, codeInvalidInput
	case push.Unauthorized:
		status, code = http.StatusUnauthorized, codeAuthFailed
	case push.Forbidden:
		status, code = http.StatusForbidden, "forbidden"
	case push.NotFound:
		status, code = http.StatusNotFound, "not_found"
	case push.Conflict:
		status, code = http.StatusConflict, "conflict"
	case push.TooLarge:
		status, code = http.StatusRequestEntityTooLarge, codePayloadTooLarge
	case push.RateLimited:
		status, code = http.StatusTooManyRequests, "rate_limited"
		w.Header().Set("Retry-After", "1")
	case push.Disabled:
		status, code = http.StatusNotFound, "push_not_enabled"
	case push.Unavailable:
		status, code = http.StatusServiceUnavailable, "service_unavailable"
		a.log.Warn("push store unavailable", zap.String("error", e.Msg))
	}
	writeError(w, status, code, e.Msg)
}

// admin refuses a device-authenticated request to an admin route.
func (a *api) admin(w http.ResponseWriter, pr *pushRequest) bool {
	if pr.caller.Admin {
		return true
	}
	writeError(w, http.StatusForbidden, "forbidden", "push-admin capability is required: sign the request with the app secret")
	return false
}

// adminPage starts an admin list route: the request, once admitted, and its page size.
func (a *api) adminPage(w http.ResponseWriter, r *http.Request) (*pushRequest, int, bool) {
	pr := pushOf(r)
	if !a.admin(w, pr) {
		return nil, 0, false
	}
	limit, ok := pushLimit(w, a, r)
	return pr, limit, ok
}

func pushLimit(w http.ResponseWriter, a *api, r *http.Request) (int, bool) {
	n, err := push.ParseLimit(qget(r, "limit"))
	if err != nil {
		a.pushFail(w, err)
		return 0, false
	}
	return n, true
}

func (a *api) pushRegister(w http.ResponseWriter, r *http.Request) {
	pr := pushOf(r)
	rotate := false
	switch strings.ToLower(r.Header.Get(headerRotateToken)) {
	case "1", "true", "yes":
		rotate = true
	}
	reg, err := a.push.RegisterDevice(r.Context(), pr.app.ID, pr.body, pr.caller, rotate)
	if err != nil {
		a.pushFail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, push.ViewRegistration(reg))
}

func (a *api) pushListDevices(w http.ResponseWriter, r *http.Request) {
	pr, limit, ok := a.adminPage(w, r)
	if !ok {
		return
	}
	ds, next, err := a.push.ListDevices(r.Context(), pr.app.ID, qget(r, "clientId"), qget(r, "cursor"), limit)
	if err != nil {
		a.pushFail(w, err)
		return
	}
	views := make([]push.DeviceView, len(ds))
	for i, d := range ds {
		views[i] = push.ViewDevice(d)
	}
	writeJSON(w, http.StatusOK, push.NewList(views, next))
}

func (a *api) pushDeleteDevicesOfClient(w http.ResponseWriter, r *http.Request) {
	pr := pushOf(r)
	if !a.admin(w, pr) {
		return
	}
	client := qget(r, "clientId")
	if client == "" {
		fail(w, badRequest("removeWhere requires clientId"))
		return
	}
	n, err := a.push.DeleteDevicesOfClient(r.Context(), pr.app.ID, client)
	if err != nil {
		a.pushFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": n, "consistency": "strong"})
}

func (a *api) pushGetDevice(w http.ResponseWriter, r *http.Request) {
	pr := pushOf(r)
	id, perr := pathParam(r, "deviceID")
	if perr != nil {
		fail(w, badRequest("%v", perr))
		return
	}
	d, err := a.push.GetDevice(r.Context(), pr.app.ID, id, pr.caller)
	if err != nil {
		a.pushFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, push.ViewDevice(d))
}

func (a *api) pushDeleteDevice(w http.ResponseWriter, r *http.Request) {
	pr := pushOf(r)
	id, perr := pathParam(r, "deviceID")
	if perr != nil {
		fail(w, badRequest("%v", perr))
		return
	}
	if err := a.push.DeleteDevice(r.Context(), pr.app.ID, id, pr.caller); err != nil {
		a.pushFail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) pushSubscribe(w http.ResponseWriter, r *http.Request) {
	pr := pushOf(r)
	s, d, err := a.push.Subscribe(r.Context(), pr.app.ID, pr.body, pr.caller)
	if err != nil {
		a.pushFail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, push.ViewSubscription(*s, d))
}

// pushFilter reads channel, deviceId and clientId from the query.
func pushFilter(r *http.Request) push.Filter {
	return push.Filter{Channel: qget(r, "channel"), DeviceID: qget(r, "deviceId"), ClientID: qget(r, "clientId")}
}

// qget reads a query parameter whatever the case of its name: signing SDKs lowercase the
// parameter names they send (the Go SDKs send deviceid), Sockudo's clients camelCase them.
func qget(r *http.Request, key string) string {
	q := r.URL.Query()
	if v := q.Get(key); v != "" {
		return v
	}
	for k, vs := range q {
		if strings.EqualFold(k, key) && len(vs) > 0 {
			return vs[len(vs)-1]
		}
	}
	return ""
}

func (a *api) pushListSubscriptions(w http.ResponseWriter, r *http.Request) {
	pr := pushOf(r)
	limit, ok := pushLimit(w, a, r)
	if !ok {
		return
	}
	subs, devs, next, err := a.push.ListSubscriptions(r.Context(), pr.app.ID, pushFilter(r), qget(r, "cursor"), limit, pr.caller)
	if err != nil {
		a.pushFail(w, err)
		return
	}
	views := make([]push.SubscriptionView, len(subs))
	for i, s := range subs {
		views[i] = push.ViewSubscription(s, devs[s.DeviceID])
	}
	writeJSON(w, http.StatusOK, push.NewList(views, next))
}

func (a *api) pushUnsubscribe(w http.ResponseWriter, r *http.Request) {
	pr := pushOf(r)
	n, err := a.push.Unsubscribe(r.Context(), pr.app.ID, pushFilter(r), pr.caller)
	if err != nil {
		a.pushFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"deleted": n})
}

func (a *api) pushListChannels(w http.ResponseWriter, r *http.Request) {
	pr, limit, ok := a.adminPage(w, r)
	if !ok {
		return
	}
	chs, next, err := a.push.ListChannels(r.Context(), pr.app.ID, qget(r, "cursor"), limit)
	if err != nil {
		a.pushFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, push.NewList(chs, next))
}

// pushPublish answers 202 with the publish id: publishing is always asynchronous (a
// request asking sync: true, or ?mode=sync, gets X-Sockudo-Forced-Async, as on Sockudo).
func (a *api) pushPublish(w http.ResponseWriter, r *http.Request) {
	pr := pushOf(r)
	if !a.admin(w, pr) {
		return
	}
	req, err := push.ParsePublish(pr.body, a.now())
	if err != nil {
		a.pushFail(w, err)
		return
	}
	p, err := a.push.Publish(r.Context(), pr.app.ID, req)
	if err != nil {
		a.pushFail(w, err)
		return
	}
	if strings.Contains(string(pr.body), `"sync":true`) || qget(r, "mode") == "sync" {
		w.Header().Set("X-Sockudo-Forced-Async", "publish-api-is-async")
	}
	writeJSON(w, http.StatusAccepted, push.ViewAccepted(p))
}

func (a *api) pushBatch(w http.ResponseWriter, r *http.Request) {
	pr := pushOf(r)
	if !a.admin(w, pr) {
		return
	}
	reqs, err := push.ParseBatch(pr.body, a.now())
	if err != nil {
		a.pushFail(w, err)
		return
	}
	for _, req := range reqs {
		if err := push.CheckPayload(&req.Payload, req.Overrides); err != nil {
			a.pushFail(w, err)
			return
		}
	}
	items := make([]push.AcceptedView, 0, len(reqs))
	for i, req := range reqs {
		p, err := a.push.Publish(r.Context(), pr.app.ID, req)
		if err != nil {
			err.Msg = "batch[" + strconv.Itoa(i) + "]: " + err.Msg
			a.pushFail(w, err)
			return
		}
		items = append(items, push.ViewAccepted(p))
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"items": items})
}

func (a *api) pushStatus(w http.ResponseWriter, r *http.Request) {
	pr, limit, ok := a.adminPage(w, r)
	if !ok {
		return
	}
	id, perr := pathParam(r, "publishID")
	if perr != nil {
		fail(w, badRequest("%v", perr))
		return
	}
	p, ds, next, evs, err := a.push.Status(r.Context(), pr.app.ID, id, qget(r, "cursor"), limit)
	if err != nil {
		a.pushFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, push.ViewStatus(p, ds, next, evs))
}

func (a *api) pushCancel(w http.ResponseWriter, r *http.Request) {
	pr := pushOf(r)
	if !a.admin(w, pr) {
		return
	}
	id, perr := pathParam(r, "publishID")
	if perr != nil {
		fail(w, badRequest("%v", perr))
		return
	}
	if _, err := a.push.Cancel(r.Context(), pr.app.ID, id); err != nil {
		a.pushFail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) pushDeliveryStatus(w http.ResponseWriter, r *http.Request) {
	pr := pushOf(r)
	if !a.admin(w, pr) {
		return
	}
	e, err := a.push.AddDeliveryEvent(r.Context(), pr.app.ID, pr.body)
	if err != nil {
		a.pushFail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, e)
}

func (a *api) pushCredentials(w http.ResponseWriter, r *http.Request) {
	pr := pushOf(r)
	if !a.admin(w, pr) {
		return
	}
	cs, err := a.push.Credentials(pr.app.ID)
	if err != nil {
		a.pushFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, push.NewList(cs, ""))
}
