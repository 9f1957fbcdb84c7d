package bridge

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Every labelled counter of the bridge is indexed by a typed enum whose
// names are the label values (docs/operations.md lists them; dashboards
// depend on them). Each is created up front by its gen function, which
// panics if the names list and the enum drift; TestMetricLabels calls them.

// requestOp is a valid request's op: mdgate_ws_requests_total{op}.
type requestOp uint8

const (
	opSubscribe requestOp = iota
	opUnsubscribe
	opPing
	opResume
	numRequestOps
)

var requestOpNames = [numRequestOps]string{
	opSubscribe:   "subscribe",
	opUnsubscribe: "unsubscribe",
	opPing:        "ping",
	opResume:      "resume",
}

func (o requestOp) String() string { return requestOpNames[o] }

// parseOp returns the requestOp named op; false for an op ParseRequest
// would have refused.
func parseOp(op string) (requestOp, bool) {
	for o, name := range requestOpNames {
		if name == op {
			return requestOp(o), true
		}
	}
	return 0, false
}

// closeReason is why the bridge closed a connection:
// mdgate_ws_closes_total{reason}. Slow clients cut off by the fan-out are
// blackbox.DisconnectReason.
type closeReason uint8

const (
	closeAbuse          closeReason = iota // too many bad requests: 1008
	closeReadLimit                         // a frame over ReadLimit: 1009
	closeTokenExpired                      // the token's exp passed: 1008
	closeNoPong                            // nothing received for PongWait: 4009
	closeBadUTF8                           // a text frame not UTF-8: 1007
	closeShutdownForced                    // still open at the shutdown bound: dropped
	closeStandby                           // this gateway became a failover pair's standby: 1012, try the other
	numCloseReasons
)

var closeReasonNames = [numCloseReasons]string{
	closeAbuse:          "abuse",
	closeReadLimit:      "read_limit",
	closeTokenExpired:   "token_expired",
	closeNoPong:         "no_pong",
	closeBadUTF8:        "bad_utf8",
	closeShutdownForced: "shutdown_forced",
	closeStandby:        "standby",
}

func (r closeReason) String() string { return closeReasonNames[r] }

// rejectReason is why an upgrade was refused: mdgate_ws_rejected_total{reason}.
type rejectReason uint8

const (
	rejectOrigin        rejectReason = iota // Origin not allowed (403)
	rejectHandshake                         // the upgrader refused the request (not a WebSocket handshake)
	rejectAuth                              // no valid token (401)
	rejectMaxConns                          // MaxConns open (503)
	rejectMaxConnsPerIP                     // MaxConnsPerIP open from that address (503)
	rejectPassive                           // a failover pair's standby (503; Config.Vote)
	numRejectReasons
)

var rejectReasonNames = [numRejectReasons]string{
	rejectOrigin:        "origin",
	rejectHandshake:     "handshake",
	rejectAuth:          "auth",
	rejectMaxConns:      "max_conns",
	rejectMaxConnsPerIP: "max_conns_per_ip",
	rejectPassive:       "passive",
}

func (r rejectReason) String() string { return rejectReasonNames[r] }

type metrics struct {
	connections prometheus.Gauge
	requests    [numRequestOps]prometheus.Counter
	errors      [numErrorCodes]prometheus.Counter
	closes      [numCloseReasons]prometheus.Counter
	rejected    [numRejectReasons]prometheus.Counter
	denied      prometheus.Counter // subscriptions a token did not cover
}

func (m *metrics) recordRequest(op requestOp)        { m.requests[op].Inc() }
func (m *metrics) recordError(c ErrorCode)           { m.errors[c].Inc() }
func (m *metrics) recordClose(r closeReason)         { m.closes[r].Inc() }
func (m *metrics) recordCloses(r closeReason, n int) { m.closes[r].Add(float64(n)) }
func (m *metrics) recordReject(r rejectReason)       { m.rejected[r].Inc() }
func (m *metrics) recordDenied()                     { m.denied.Inc() }

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mdgate_ws_connections",
			Help: "WebSocket connections open."}),
		denied: prometheus.NewCounter(prometheus.CounterOpts{Name: "mdgate_ws_denied_subscriptions_total",
			Help: "Subscribe requests refused because the client's token does not cover a topic."}),
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_ws_requests_total",
		Help: "Valid WebSocket requests, by op."}, []string{"op"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_ws_errors_total",
		Help: "Requests refused with an error frame, by code."}, []string{"code"})
	closes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_ws_closes_total",
		Help: "Connections the bridge closed for bad input, silence, or a shutdown past its bound, by reason."}, []string{"reason"})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_ws_rejected_total",
		Help: "WebSocket upgrades refused, by reason."}, []string{"reason"})
	reg.MustRegister(m.connections, m.denied, requests, errs, closes, rejected)
	m.requests = genRequestCounters(requests)
	m.errors = genErrorCounters(errs)
	m.closes = genCloseCounters(closes)
	m.rejected = genRejectCounters(rejected)
	return m
}

func genRequestCounters(v *prometheus.CounterVec) (out [numRequestOps]prometheus.Counter) {
	genCounters(v, out[:], requestOpNames[:])
	return out
}

func genErrorCounters(v *prometheus.CounterVec) (out [numErrorCodes]prometheus.Counter) {
	genCounters(v, out[:], errorCodeNames[:])
	return out
}

func genCloseCounters(v *prometheus.CounterVec) (out [numCloseReasons]prometheus.Counter) {
	genCounters(v, out[:], closeReasonNames[:])
	return out
}

func genRejectCounters(v *prometheus.CounterVec) (out [numRejectReasons]prometheus.Counter) {
	genCounters(v, out[:], rejectReasonNames[:])
	return out
}

// genCounters resolves one child of v per name into out, so every label
// value is exported at 0 from the start. It panics if the list has drifted
// from its enum: a length that differs, a value left without a name (a
// constant added before the num sentinel, its name forgotten), or a name
// given twice.
func genCounters(v *prometheus.CounterVec, out []prometheus.Counter, names []string) {
	if len(out) != len(names) {
		panic(fmt.Sprintf("bridge metrics: %d counters for %d names", len(out), len(names)))
	}
	seen := make(map[string]bool, len(names))
	for i, name := range names {
		if name == "" || seen[name] {
			panic(fmt.Sprintf("bridge metrics: label value %d is %q: the names list and its enum have drifted", i, name))
		}
		seen[name] = true
		out[i] = v.WithLabelValues(name)
	}
}
