package snapshot

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// lvcMetrics count SNAP requests under the names the cache exported them
// by before the server kept its own (mdgate_lvc_snapshot_requests_total,
// mdgate_lvc_snapshot_seconds), kept for the dashboards that query them:
// the same requests as mdgate_snapshot_requests_total, by ok or error
// (any other end). Owned by the serving loop.
type lvcMetrics struct {
	ok, err prometheus.Counter
	seconds prometheus.Observer
}

// newLVCMetrics returns the counters, each at zero, and their collectors
// for the caller to register.
func newLVCMetrics() (lvcMetrics, []prometheus.Collector) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mdgate_lvc_snapshot_requests_total", Help: "Snapshot (SNAP) requests, by result: ok, or error for any other end."}, []string{"result"})
	seconds := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "mdgate_lvc_snapshot_seconds", Help: "Time to serve a snapshot (SNAP) request, whatever its end.",
		Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10)})
	m := lvcMetrics{ok: requests.WithLabelValues("ok"), err: requests.WithLabelValues("error"), seconds: seconds}
	return m, []prometheus.Collector{requests, seconds}
}

// observe counts one SNAP's end, answered in full (ok) or not, d after it
// was accepted.
func (m lvcMetrics) observe(ok bool, d time.Duration) {
	if ok {
		m.ok.Inc()
	} else {
		m.err.Inc()
	}
	m.seconds.Observe(d.Seconds())
}
