package gateway

import (
	"encoding/json"
	"math"
	"net/http"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/mdgate/mdgate/bridge"
	"github.com/mdgate/mdgate/web"
)

// OpsView is the body of GET /api/ops, which the operations page (/ops)
// reads once a second: the gateway's own registry gathered in process, so
// the page shows exactly what /metrics exports.
//
// Counters are totals, not rates. The page computes rates from two
// successive samples (difference over the difference of TS), and windowed
// p99s from the difference of two samples' buckets, as Prometheus's rate()
// and histogram_quantile() do. The endpoint therefore keeps no state and runs
// no sampler: it costs nothing while nobody looks, and each viewer gets rates
// over its own interval whatever the number of viewers.
//
// A metric the registry does not hold (the cache is off, say) is null and
// named in Missing; the page shows it as absent rather than failing.
type OpsView struct {
	TS            float64 `json:"ts"`    // unix seconds of the gather
	Epoch         string  `json:"epoch"` // as in /healthz and every stamp
	Running       bool    `json:"running"`
	UptimeSeconds float64 `json:"uptime_seconds"` // since Run started

	IngressMessages  *float64           `json:"ingress_messages_total"`
	IngressBytes     *float64           `json:"ingress_bytes_total"`
	FanoutMessages   *float64           `json:"fanout_messages_total"`
	FanoutDeliveries *float64           `json:"fanout_deliveries_total"`
	WSConnections    *float64           `json:"ws_connections"`
	FanoutClients    *float64           `json:"fanout_clients"`
	ZMQPeers         map[string]float64 `json:"zmq_peers"` // by socket
	CacheTopics      *float64           `json:"cache_topics"`
	CacheBytes       *float64           `json:"cache_bytes"`

	// Cutoffs are WebSocket clients cut off, by reason
	// (mdgate_fanout_disconnects_total).
	Cutoffs map[string]float64 `json:"cutoffs"`
	// Drops are messages lost, by metric and reason: ingress drops, fan-out
	// drops, ZeroMQ egress errors, WebSocket closes for bad input.
	Drops map[string]map[string]float64 `json:"drops"`

	FanoutLag        *OpsHistogram `json:"fanout_lag_seconds"`
	ProxyLoop        *OpsHistogram `json:"proxy_loop_seconds"`
	ProxyLoopLongest *float64      `json:"proxy_loop_longest_seconds"`

	Missing []string `json:"missing"` // metrics not in the registry
}

// OpsHistogram is a histogram's cumulative buckets (without +Inf: Count is
// that bucket) and its p99 since start (null before any observation).
type OpsHistogram struct {
	Count  uint64    `json:"count"`
	Sum    float64   `json:"sum"`
	Le     []float64 `json:"le"`
	Counts []uint64  `json:"counts"` // cumulative, one per Le
	P99    *float64  `json:"p99"`
}

// dropMetrics are the Drops keys and the label each is broken down by.
var dropMetrics = []struct{ name, label string }{
	{"mdgate_ingress_dropped_total", "reason"},
	{"mdgate_fanout_dropped_total", "reason"},
	{"mdgate_zmq_egress_errors_total", "egress"},
	{"mdgate_ws_closes_total", "reason"},
}

type ops struct {
	g       *Gateway
	started time.Time
}

func (g *Gateway) opsHandler() http.Handler {
	return &ops{g: g, started: time.Now()}
}

func (o *ops) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a := o.g.cfg.Bridge.Auth; a != nil {
		grant, err := a.Verify(bridge.TokenFrom(r))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mdgate"`)
			http.Error(w, "unauthorized: "+err.Error(), http.StatusUnauthorized)
			return
		}
		if !grant.Ops {
			http.Error(w, "forbidden: the token has no ops claim", http.StatusForbidden)
			return
		}
	}
	v, err := o.view(time.Now())
	if err != nil {
		http.Error(w, "gather: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

func (o *ops) view(now time.Time) (*OpsView, error) {
	fams, err := o.g.reg.Gather()
	if err != nil && len(fams) == 0 {
		return nil, err
	}
	// A partial gather still carries the families that worked.
	by := make(map[string]*dto.MetricFamily, len(fams))
	for _, f := range fams {
		by[f.GetName()] = f
	}
	h := o.g.proxy.Health()
	v := &OpsView{
		TS:            float64(now.UnixNano()) / 1e9,
		Epoch:         h.Epoch,
		Running:       h.Running,
		UptimeSeconds: now.Sub(o.started).Seconds(),
		Missing:       []string{},
	}
	scalar := func(name string) *float64 {
		f := by[name]
		if f == nil {
			v.Missing = append(v.Missing, name)
			return nil
		}
		var s float64
		for _, m := range f.GetMetric() {
			s += value(m)
		}
		return &s
	}
	byLabel := func(name, label string) map[string]float64 {
		f := by[name]
		if f == nil {
			v.Missing = append(v.Missing, name)
			return nil
		}
		out := map[string]float64{}
		for _, m := range f.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					key = l.GetValue()
				}
			}
			out[key] += value(m)
		}
		return out
	}
	hist := func(name string) *OpsHistogram {
		f := by[name]
		if f == nil || len(f.GetMetric()) == 0 || f.GetMetric()[0].GetHistogram() == nil {
			v.Missing = append(v.Missing, name)
			return nil
		}
		return opsHistogram(f.GetMetric())
	}
	v.IngressMessages = scalar("mdgate_ingress_messages_total")
	v.IngressBytes = scalar("mdgate_ingress_bytes_total")
	v.FanoutMessages = scalar("mdgate_fanout_messages_total")
	v.FanoutDeliveries = scalar("mdgate_fanout_deliveries_total")
	v.WSConnections = scalar("mdgate_ws_connections")
	v.FanoutClients = scalar("mdgate_fanout_clients")
	v.ZMQPeers = byLabel("mdgate_zmq_peers", "socket")
	v.CacheTopics = scalar("mdgate_lvc_topics")
	v.CacheBytes = scalar("mdgate_lvc_bytes")
	v.Cutoffs = byLabel("mdgate_fanout_disconnects_total", "reason")
	v.Drops = map[string]map[string]float64{}
	for _, d := range dropMetrics {
		if m := byLabel(d.name, d.label); m != nil {
			v.Drops[d.name] = m
		}
	}
	v.FanoutLag = hist("mdgate_fanout_lag_seconds")
	v.ProxyLoop = hist("mdgate_proxy_loop_seconds")
	v.ProxyLoopLongest = scalar("mdgate_proxy_loop_longest_seconds")
	return v, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// opsHistogram merges a histogram family's series (bucket bounds are the
// same across one family's series).
func opsHistogram(ms []*dto.Metric) *OpsHistogram {
	h := &OpsHistogram{}
	counts := map[float64]uint64{}
	for _, m := range ms {
		hm := m.GetHistogram()
		if hm == nil {
			continue
		}
		h.Count += hm.GetSampleCount()
		h.Sum += hm.GetSampleSum()
		for _, b := range hm.GetBucket() {
			if ub := b.GetUpperBound(); !math.IsInf(ub, +1) {
				counts[ub] += b.GetCumulativeCount()
			}
		}
	}
	for ub := range counts {
		h.Le = append(h.Le, ub)
	}
	sort.Float64s(h.Le)
	for _, ub := range h.Le {
		h.Counts = append(h.Counts, counts[ub])
	}
	if q, ok := Quantile(0.99, h.Le, h.Counts, h.Count); ok {
		h.P99 = &q
	}
	return h
}

// Quantile estimates the q-quantile from cumulative bucket counts as
// Prometheus's histogram_quantile does: linear within the bucket that holds
// it, the highest finite bound when it falls in +Inf. ok is false with no
// observations. ops.js computes windowed quantiles the same way.
func Quantile(q float64, le []float64, cum []uint64, total uint64) (v float64, ok bool) {
	if total == 0 || len(le) == 0 {
		return 0, false
	}
	rank := q * float64(total)
	lower, below := 0.0, uint64(0)
	for i, ub := range le {
		if float64(cum[i]) >= rank {
			in := cum[i] - below
			if in == 0 {
				return ub, true
			}
			return lower + (ub-lower)*(rank-float64(below))/float64(in), true
		}
		lower, below = ub, cum[i]
	}
	return le[len(le)-1], true
}

// serveOpsPage serves web/static/ops.html at /ops with the dashboard's
// headers (its Content-Security-Policy among them).
func serveOpsPage(w http.ResponseWriter, r *http.Request) {
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/ops.html"
	web.Handler().ServeHTTP(w, r2)
}
