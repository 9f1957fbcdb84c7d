package blackbox

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mdgate/mdgate/slowsub"
)

// DisconnectReason is why the engine closed a client; its String is a fixed
// metric label.
type DisconnectReason uint8

const (
	DisconnectQueueBytes   DisconnectReason = iota // slowsub.QueueBytes
	DisconnectLag                                  // slowsub.Lag
	DisconnectWriteTimeout                         // a write missed its deadline
	DisconnectWriteError                           // a write failed
	numDisconnectReasons
)

var disconnectNames = [numDisconnectReasons]string{
	DisconnectQueueBytes:   "queue_bytes",
	DisconnectLag:          "lag",
	DisconnectWriteTimeout: "write_timeout",
	DisconnectWriteError:   "write_error",
}

func (r DisconnectReason) String() string { return disconnectNames[r] }

func fromSlow(r slowsub.Reason) DisconnectReason {
	switch r {
	case slowsub.Lag:
		return DisconnectLag
	case slowsub.Stalled:
		return DisconnectWriteTimeout
	}
	return DisconnectQueueBytes
}

type metrics struct {
	messages, deliveries prometheus.Counter
	dropShardFull        prometheus.Counter
	conflated            prometheus.Counter
	duplicates           prometheus.Counter
	snapshotValues       prometheus.Counter
	sweeps               prometheus.Counter
	busySweeps           prometheus.Counter
	schedP90             prometheus.Gauge
	throttled            prometheus.Counter
	disconnects          [numDisconnectReasons]prometheus.Counter
	clients              prometheus.Gauge
	subscriptions        prometheus.Gauge
	queueBytes           prometheus.Histogram
	lag                  prometheus.Histogram
	batch                prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		messages: prometheus.NewCounter(prometheus.CounterOpts{Name: "mdgate_fanout_messages_total",
			Help: "Messages taken by the fan-out shards (none while no client is connected)."}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{Name: "mdgate_fanout_deliveries_total",
			Help: "Messages handed to client queues (one per matching client)."}),
		conflated: prometheus.NewCounter(prometheus.CounterOpts{Name: "mdgate_fanout_conflated_total",
			Help: "Undelivered values replaced by a newer value of the same topic for clients that asked to conflate."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "mdgate_fanout_snapshot_overlap_total",
			Help: "Live updates not queued because the client's snapshot already held them or a newer value."}),
		snapshotValues: prometheus.NewCounter(prometheus.CounterOpts{Name: "mdgate_fanout_snapshot_values_total",
			Help: "Snapshot values written to clients, taken in chunks as each client's writer drains."}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{Name: "mdgate_fanout_throttled_total",
			Help: "Values replaced by a newer one of the same topic while held back by a subscription's throttle_ms."}),
		sweeps: prometheus.NewCounter(prometheus.CounterOpts{Name: "mdgate_fanout_sweeps_total",
			Help: "Passes of the sweeper that checks every client against its limits (every SweepEvery)."}),
		schedP90: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mdgate_fanout_sched_latency_p90_seconds",
			Help: "The Go scheduler's p90 latency (ready goroutines waiting for a CPU) over the last sweep interval, the lower edge of its runtime/metrics bucket; what --write-delay-busy decides on."}),
		busySweeps: prometheus.NewCounter(prometheus.CounterOpts{Name: "mdgate_fanout_busy_sweeps_total",
			Help: "Sweeps after which the shards hold wake-ups for --write-delay-busy: the Go scheduler's ready goroutines waited 5 ms or more at p90 (until under 2 ms). Over mdgate_fanout_sweeps_total: the share of time held."}),
		clients: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mdgate_fanout_clients",
			Help: "Clients connected to the fan-out."}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mdgate_fanout_subscriptions",
			Help: "Subscriptions (topics and prefixes) held by clients."}),
		queueBytes: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mdgate_fanout_queue_bytes",
			Help:    "Bytes a client's writer took from its queue per wake-up.",
			Buckets: prometheus.ExponentialBuckets(64, 4, 9)}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mdgate_fanout_lag_seconds",
			Help:    "Age of the oldest message in a write batch, from its ingress stamp.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mdgate_fanout_write_batch_messages",
			Help:    "Messages per write (one write per writer wake-up).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
	}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_fanout_dropped_total",
		Help: "Messages the fan-out dropped for every client, by reason."}, []string{"reason"})
	m.dropShardFull = dropped.WithLabelValues("shard_full")
	disc := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_fanout_disconnects_total",
		Help: "Clients the fan-out cut off, by reason."}, []string{"reason"})
	m.disconnects = genDisconnectCounters(disc)
	reg.MustRegister(m.messages, m.deliveries, m.conflated, m.duplicates, m.snapshotValues, m.sweeps, m.busySweeps, m.schedP90, m.throttled, m.clients, m.subscriptions,
		m.queueBytes, m.lag, m.batch, dropped, disc)
	return m
}

// recordDisconnect counts a client the engine cut off.
func (m *metrics) recordDisconnect(r DisconnectReason) { m.disconnects[r].Inc() }

// genDisconnectCounters resolves every reason's child of v up front, so each
// is exported at 0. It panics if disconnectNames has drifted from the enum:
// a reason left without a name, or a name given twice.
func genDisconnectCounters(v *prometheus.CounterVec) (out [numDisconnectReasons]prometheus.Counter) {
	seen := map[string]bool{}
	for r, name := range disconnectNames {
		if name == "" || seen[name] {
			panic(fmt.Sprintf("blackbox: DisconnectReason %d is named %q: disconnectNames has drifted from the enum", r, name))
		}
		seen[name] = true
		out[r] = v.WithLabelValues(name)
	}
	return out
}
