package bridge

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connections prometheus.Gauge
	requests    map[string]prometheus.Counter // by op, fixed
	errors      map[string]prometheus.Counter // by code, fixed
	closes      map[string]prometheus.Counter // by reason, fixed
	rejected    map[string]prometheus.Counter // by reason, fixed
	denied      prometheus.Counter            // subscriptions a token did not cover
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mdgate_ws_connections",
			Help: "WebSocket connections open."}),
	}
	vec := func(name, help, label string, values ...string) map[string]prometheus.Counter {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
		reg.MustRegister(v)
		out := map[string]prometheus.Counter{}
		for _, val := range values {
			out[val] = v.WithLabelValues(val)
		}
		return out
	}
	m.requests = vec("mdgate_ws_requests_total", "Valid WebSocket requests, by op.", "op", "subscribe", "unsubscribe", "ping", "resume")
	m.errors = vec("mdgate_ws_errors_total", "Requests refused with an error frame, by code.", "code", errorCodes...)
	m.closes = vec("mdgate_ws_closes_total", "Connections the bridge closed for bad input, silence, or a shutdown past its bound, by reason.", "reason", "abuse", "read_limit", "token_expired", "no_pong", "bad_utf8", "shutdown_forced")
	m.rejected = vec("mdgate_ws_rejected_total", "WebSocket upgrades refused, by reason.", "reason", "origin", "handshake", "auth", "max_conns", "max_conns_per_ip")
	m.denied = prometheus.NewCounter(prometheus.CounterOpts{Name: "mdgate_ws_denied_subscriptions_total",
		Help: "Subscribe requests refused because the client's token does not cover a topic."})
	reg.MustRegister(m.denied)
	reg.MustRegister(m.connections)
	return m
}
