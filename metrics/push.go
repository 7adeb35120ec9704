package metrics

import "github.com/prometheus/client_golang/prometheus"

// pushMetrics are the push notification series (push.Metrics).
type pushMetrics struct {
	published   *prometheus.CounterVec
	deliveries  *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
}

func (p *pushMetrics) register(reg *prometheus.Registry) {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	}
	p.published = counter("push_publishes_total", "Push publishes accepted, by app.", "app")
	p.deliveries = counter("push_deliveries_total", "Push sends and settled deliveries, by app, platform (apns, fcm, web) and outcome (delivered, retry, unregistered, rejected, failed, expired).", "app", "platform", "outcome")
	p.rateLimited = counter("push_rate_limited_total", "Push publishes refused with 429 and deliveries held back by the app's push rate limit, by app.", "app")
	reg.MustRegister(p.published, p.deliveries, p.rateLimited)
}

// PushPublished counts an accepted push publish (push.Metrics).
func (m *Metrics) PushPublished(appID string) { m.push.published.WithLabelValues(appID).Inc() }

// PushDelivery counts one push send outcome (push.Metrics).
func (m *Metrics) PushDelivery(appID, platform, outcome string) {
	m.push.deliveries.WithLabelValues(appID, platform, outcome).Inc()
}

// PushRateLimited counts a publish or delivery held back by the app's push limits.
func (m *Metrics) PushRateLimited(appID string) { m.push.rateLimited.WithLabelValues(appID).Inc() }
