package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
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
