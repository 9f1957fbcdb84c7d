package blackbox

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// mdgate_fanout_disconnects_total exports exactly these reasons (a contract:
// docs/operations.md, dashboards), each at 0 from the start, and each
// DisconnectReason counts under its own.
func TestDisconnectCounters(t *testing.T) {
	want := []string{"queue_bytes", "lag", "write_timeout", "write_error"}
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"reason"})
	c := genDisconnectCounters(v)
	if n := testutil.CollectAndCount(v); n != len(want) {
		t.Fatalf("%d reasons exported, want %d", n, len(want))
	}
	for r, name := range want {
		c[r].Inc()
		if got := testutil.ToFloat64(v.WithLabelValues(name)); got != 1 {
			t.Errorf("DisconnectReason(%d) does not count under %q", r, name)
		}
		if s := DisconnectReason(r).String(); s != name {
			t.Errorf("DisconnectReason(%d).String() = %q, want %q", r, s, name)
		}
	}
}
