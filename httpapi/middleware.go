package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.uber.org/zap"

	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// unmatchedRoute is the route label of a request no route matched.
const unmatchedRoute = "unmatched"

// observe reports every request to Metrics under its chi route pattern (never the raw path,
// whose ids and channel names would make the label set unbounded).
func (a *api) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := a.now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		defer func() {
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			route := chi.RouteContext(r.Context()).RoutePattern()
			if route == "" || route == "/*" {
				route = unmatchedRoute
			}
			a.metrics.ObserveHTTP(route, r.Method, status, a.now().Sub(start))
		}()
		next.ServeHTTP(ww, r)
	})
}

// recoverer turns a panic in a handler into a logged 500 internal_error. When the handler
// had already started its answer, the connection is aborted instead so that the client never
// mistakes a cut answer for a success.
func (a *api) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			a.log.Error("panic in HTTP handler", zap.Any("panic", p), zap.String("method", r.Method),
				zap.String("path", r.URL.Path), zap.ByteString("stack", debug.Stack()))
			if ww, ok := w.(middleware.WrapResponseWriter); ok && ww.Status() != 0 {
				panic(http.ErrAbortHandler)
			}
			fail(w, errInternal)
		}()
		next.ServeHTTP(w, r)
	})
}

type ctxKey struct{}

// signed is what authenticate hands to the /apps handlers.
type signed struct {
	app   config.App
	query *protocol.APIQuery
	body  []byte
}

// signedOf returns the authenticated request data; only handlers behind authenticate call it.
func signedOf(r *http.Request) *signed {
	s, _ := r.Context().Value(ctxKey{}).(*signed)
	if s == nil {
		// A route registered outside the authenticated group: a programming error that the
		// recoverer turns into a 500.
		panic("httpapi: signed handler reached without authentication")
	}
	return s
}

// param returns the signed query parameter key (lowercase): its last value, exactly the one
// the signature covers.
func (s *signed) param(key string) string { return s.query.Params[key] }

// authenticate checks Pusher's request signature (spec http-api §1) in Pusher's order:
// query (400), auth_key (404 app_not_found), app id in the path (401), auth_timestamp within
// 600 s (401), body size (413/400), body_md5 (401) and the HMAC over the raw path (401).
// It reads the body once and hands it, the app and the parsed query to the handler.
func (a *api) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, aerr := a.verify(r, true)
		if aerr != nil {
			a.recordRefusal(r, aerr)
			fail(w, aerr)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, s))
		if a.watching(s.app.ID) {
			a.serveRecordingErrors(w, r, s.app.ID, next)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// verify checks a signed request; pathApp: the app must also be the {appID} of the path
// (every /apps/ route; GET /stats has none).
func (a *api) verify(r *http.Request, pathApp bool) (*signed, *apiError) {
	q, err := protocol.ParseAPIQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("Invalid authentication query: %v (signed requests carry auth_key, auth_timestamp, auth_version, auth_signature, and body_md5 on POST)", err)
	}
	app, ok := a.hub.AppByKey(q.AuthKey)
	if !ok {
		return nil, &apiError{http.StatusNotFound, codeAppNotFound, fmt.Sprintf("Application key %q not found", protocol.Truncate(q.AuthKey, 64))}
	}
	if id, err := pathParam(r, "appID"); pathApp && (err != nil || id != app.ID) {
		return nil, authFailed("auth_key %q does not belong to the app in the path", protocol.Truncate(q.AuthKey, 64))
	}
	if err := q.CheckTimestamp(a.now()); err != nil {
		return nil, authFailed("Invalid auth_timestamp: %v (allowed skew is %d s)", err, int(protocol.APIAuthWindow.Seconds()))
	}
	body, aerr := a.readBody(r)
	if aerr != nil {
		return nil, aerr
	}
	if err := q.CheckBodyMD5(r.Method, body); err != nil {
		return nil, authFailed("Invalid body_md5: %v", err)
	}
	if !q.VerifyAPISignature(app.Secret, r.Method, r.URL.EscapedPath()) {
		return nil, authFailed("Invalid signature: expected the lowercase hex HMAC-SHA256, keyed with the app secret, of METHOD\\nPATH\\nQUERY (keys lowercased and sorted, values unescaped, auth_signature left out)")
	}
	return &signed{app: app, query: q, body: body}, nil
}

// pathParam returns the path parameter name decoded exactly once. chi matches on
// r.URL.RawPath (still escaped) when it is set, otherwise on the decoded r.URL.Path, so only
// the first needs unescaping; decoding the second again would turn "a%41" into "aA".
func pathParam(r *http.Request, name string) (string, error) {
	v := chi.URLParam(r, name)
	if r.URL.RawPath == "" {
		return v, nil
	}
	s, err := url.PathUnescape(v)
	if err != nil {
		return "", fmt.Errorf("path parameter %s: %w", name, err)
	}
	return s, nil
}
