package proxy

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// DropReason says why the loop dropped an ingress message. The set is fixed:
// it is a metric label.
type DropReason uint8

const (
	DropEmptyTopic    DropReason = iota // first frame empty
	DropTooManyFrames                   // more than MaxFrames frames
	DropBadStamp                        // stamped ingress without a valid stamp frame
	DropDuplicate                       // stamped ingress: seq already seen for this epoch
	DropTopicLimit                      // a new topic past MaxTopics
	DropTopicTooLong                    // a topic longer than MaxTopicBytes
	DropTooLarge                        // a message larger than MaxMsgBytes
	DropPassive                         // failover pair: a publisher's message while this gateway is not active
	DropMirror                          // failover pair: the peer's stream while this gateway is active
	DropStaleTerm                       // stamped ingress: a lower term than the last kept for the topic (a replaced active)
	numDropReasons
)

// dropReasonNames are DropReason's label values. The array takes its length
// from its entries, and init checks it against numDropReasons (derpserver's
// genDroppedCounters does the same): a reason added without a name panics
// at start instead of counting under an empty label.
var dropReasonNames = [...]string{
	DropEmptyTopic:    "empty_topic",
	DropTooManyFrames: "too_many_frames",
	DropBadStamp:      "bad_stamp",
	DropDuplicate:     "duplicate",
	DropTopicLimit:    "topic_limit",
	DropTopicTooLong:  "topic_too_long",
	DropTooLarge:      "too_large",
	DropPassive:       "passive",
	DropMirror:        "mirror",
	DropStaleTerm:     "stale_term",
}

func (r DropReason) String() string { return dropReasonNames[r] }

func init() {
	checkEnumNames("DropReason", dropReasonNames[:], int(numDropReasons))
	checkEnumNames("egress", egressNames[:], int(numEgress))
	checkEnumNames("socketRole", roleNames[:], int(numRoles))
	checkEnumNames("ReplayOutcome", replayOutcomeNames[:], int(numReplayOutcomes))
}

// checkEnumNames panics unless names holds one distinct, non-empty name for
// each of an enum's n values.
func checkEnumNames(enum string, names []string, n int) {
	if len(names) != n {
		panic(fmt.Sprintf("proxy: %d names for the %d values of %s", len(names), n, enum))
	}
	seen := make(map[string]bool, n)
	for i, name := range names {
		if name == "" {
			panic(fmt.Sprintf("proxy: %s %d has no name", enum, i))
		}
		if seen[name] {
			panic(fmt.Sprintf("proxy: %s name %q used twice", enum, name))
		}
		seen[name] = true
	}
}

// Egress names the core's output sockets; a metric label.
type egress uint8

const (
	egressRaw egress = iota
	egressStamped
	egressCapture
	numEgress
)

// egressNames, roleNames (below) and replayOutcomeNames (replay.go) are
// label values checked at init as dropReasonNames is.
var egressNames = [...]string{
	egressRaw:     "raw",
	egressStamped: "stamped",
	egressCapture: "capture",
}

// metrics holds the loop's Prometheus collectors, every child resolved once.
type metrics struct {
	ha             *haMetrics // nil outside a failover pair
	ingressMsgs    prometheus.Counter
	ingressBytes   prometheus.Counter
	dropped        [numDropReasons]prometheus.Counter
	egressMsgs     [numEgress]prometheus.Counter
	egressErrors   [numEgress]prometheus.Counter
	subscribes     [numEgress]prometheus.Counter
	unsubscribes   [numEgress]prometheus.Counter
	activeSubs     [numEgress]prometheus.Gauge
	peers          [numRoles]prometheus.Gauge
	peerDisconnect [numRoles]prometheus.Counter
	resubscribes   prometheus.Counter
	topics         prometheus.Gauge
	forward        prometheus.Observer
	auth           [2]prometheus.Counter // by authAllowed, authDenied
	accept         acceptMetrics         // listener pauses (accept.go)

	replays       [numEgress][numReplayOutcomes]prometheus.Counter
	replayCarried prometheus.Counter
	replayPending prometheus.Gauge
	loop          prometheus.Observer
	loopLongest   prometheus.Gauge
}

const (
	authAllowed = iota
	authDenied
)

// socketRole names the core's listening sockets; the metric label socket.
type socketRole uint8

const (
	roleIngress socketRole = iota // the XSUB publishers connect to
	roleEgress                    // the raw XPUB
	roleStamped                   // the stamped XPUB
	numRoles
)

var roleNames = [...]string{
	roleIngress: "ingress",
	roleEgress:  "egress",
	roleStamped: "stamped",
}

func (r socketRole) String() string { return roleNames[r] }

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{}
	ingressMsgs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mdgate_ingress_messages_total", Help: "Messages accepted from publishers."})
	ingressBytes := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mdgate_ingress_bytes_total", Help: "Frame bytes accepted from publishers."})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mdgate_ingress_dropped_total", Help: "Ingress messages dropped, by reason."}, []string{"reason"})
	egressMsgs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mdgate_zmq_egress_messages_total", Help: "Messages handed to a ZeroMQ egress socket."}, []string{"egress"})
	egressErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mdgate_zmq_egress_errors_total", Help: "Messages a ZeroMQ egress socket refused (counted as lost)."}, []string{"egress"})
	subs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mdgate_zmq_subscription_events_total", Help: "Subscribe and unsubscribe frames read from an XPUB."}, []string{"egress", "op"})
	active := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mdgate_zmq_subscriptions", Help: "Distinct subscribed prefixes on an XPUB."}, []string{"egress"})
	peers := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mdgate_zmq_peers", Help: "Connected ZeroMQ peers, by socket."}, []string{"socket"})
	disc := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mdgate_zmq_peer_disconnects_total", Help: "ZeroMQ peer disconnections (including frames over the size limit), by socket."}, []string{"socket"})
	m.topics = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mdgate_sequenced_topics", Help: "Distinct topics the sequencer tracks."})
	fwd := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "mdgate_stage_forward_seconds",
		Help:    "Time from ingress stamp to the message handed to every egress and sink.",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
	})
	reg.MustRegister(ingressMsgs, ingressBytes, dropped, egressMsgs, egressErrors, subs, active, peers, disc, m.topics, fwd)
	m.ingressMsgs, m.ingressBytes, m.forward = ingressMsgs, ingressBytes, fwd
	for r := range m.dropped {
		m.dropped[r] = dropped.WithLabelValues(dropReasonNames[r])
	}
	for e := range numEgress {
		n := egressNames[e]
		m.egressMsgs[e] = egressMsgs.WithLabelValues(n)
		m.egressErrors[e] = egressErrors.WithLabelValues(n)
		m.subscribes[e] = subs.WithLabelValues(n, "subscribe")
		m.unsubscribes[e] = subs.WithLabelValues(n, "unsubscribe")
		m.activeSubs[e] = active.WithLabelValues(n)
	}
	for r, n := range roleNames {
		m.peers[r] = peers.WithLabelValues(n)
		m.peerDisconnect[r] = disc.WithLabelValues(n)
	}
	auth := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_zmq_auth_total",
		Help: "CURVE handshakes decided by the gateway's ZAP handler, by result."}, []string{"result"})
	m.auth[authAllowed] = auth.WithLabelValues("allowed")
	m.auth[authDenied] = auth.WithLabelValues("denied")
	reg.MustRegister(auth)
	m.resubscribes = prometheus.NewCounter(prometheus.CounterOpts{Name: "mdgate_ingress_resubscribes_total",
		Help: "Times a stamped ingress, silent for --ingress-resubscribe, sent its subscriptions upstream again."})
	reg.MustRegister(m.resubscribes)
	m.accept = newAcceptMetrics(reg)

	replays := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_zmq_replay_requests_total",
		Help: "Subscribes asking for a replay of cached values, by egress and outcome (queued, coalesced into one pending, refused)."},
		[]string{"egress", "outcome"})
	for e := range numEgress {
		for o := range numReplayOutcomes {
			m.replays[e][o] = replays.WithLabelValues(egressNames[e], replayOutcomeNames[o])
		}
	}
	m.replayCarried = prometheus.NewCounter(prometheus.CounterOpts{Name: "mdgate_zmq_replay_carried_over_total",
		Help: "Loop iterations that left due replay work for the next, past the replay budget."})
	m.replayPending = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mdgate_zmq_replay_pending",
		Help: "Prefixes waiting for, or in, a replay."})
	loop := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mdgate_proxy_loop_seconds",
		Help:    "Work done in one proxy loop iteration (poll wait excluded).",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 11)})
	m.loopLongest = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mdgate_proxy_loop_longest_seconds",
		Help: "The longest proxy loop iteration since start (poll wait excluded)."})
	m.loop = loop
	reg.MustRegister(replays, m.replayCarried, m.replayPending, loop, m.loopLongest)
	return m
}
