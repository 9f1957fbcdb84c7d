package main

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/mdgate/mdgate/internal/promscrape"
)

func TestSeqCheck(t *testing.T) {
	c := newSeqCheck()
	for _, s := range []struct {
		phase int
		topic string
		seq   uint64
	}{{0, "a", 1}, {0, "a", 2}, {1, "a", 5}, {1, "a", 5}, {1, "b", 2}, {2, "a", 3}, {2, "a", 6}} {
		c.see(s.phase, s.topic, s.seq)
	}
	c.tail(2, map[string]uint64{"a": 8, "b": 2})
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"got", c.got, [numPhases]int64{2, 2, 1}},
		{"lost", c.lost, [numPhases]int64{0, 3, 2}}, // a 3-4 and b 1 during; a 7-8 never arrived
		{"dups", c.dups, int64(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if fmt.Sprint(tc.got) != fmt.Sprint(tc.want) {
				t.Errorf("seqCheck.%s = %v, want %v", tc.name, tc.got, tc.want)
			}
		})
	}
}

func TestPayloadInt(t *testing.T) {
	for _, tc := range []struct {
		in, key string
		want    int64
		ok      bool
	}{
		{`{"t":12345,"n":7,"pad":"x"}`, "t", 12345, true},
		{`{"t":12345,"n":7,"pad":"x"}`, "n", 7, true},
		{`{"t":1}`, "t", 1, true},
		{`{"t":}`, "t", 0, false},
		{`{"px":1}`, "n", 0, false},
	} {
		t.Run(tc.in+"/"+tc.key, func(t *testing.T) {
			got, ok := payloadInt([]byte(tc.in), tc.key)
			if got != tc.want || ok != tc.ok {
				t.Errorf("payloadInt(%q, %q) = %v, %v, want %v, %v", tc.in, tc.key, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// hist is a scrape holding one histogram with bounds 1, 4, 16 (cumulative
// counts as given) and count total.
func hist(total uint64, counts ...uint64) promscrape.Families {
	h := &dto.Histogram{SampleCount: ptr(total)}
	for i, ub := range []float64{1, 4, 16} {
		h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: ptr(ub), CumulativeCount: ptr(counts[i])})
	}
	return promscrape.Families{"h": &dto.MetricFamily{Name: ptr("h"), Metric: []*dto.Metric{{Histogram: h}}}}
}

func ptr[T any](v T) *T { return &v }

func TestSlowestBucket(t *testing.T) {
	a := hist(10, 5, 8, 10)
	for _, tc := range []struct {
		name string
		b    promscrape.Families
		want float64
	}{
		{"nothing new", hist(10, 5, 8, 10), 0},
		{"new in the first bucket", hist(13, 8, 11, 13), 1},
		{"one new in the third", hist(12, 6, 9, 12), 16},
		{"one past the last bound", hist(11, 5, 8, 10), math.Inf(1)},
		{"no histogram", promscrape.Families{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := slowestBucket(a, tc.b, "h"); got != tc.want {
				t.Errorf("slowestBucket(%s) = %v, want %v", tc.name, got, tc.want)
			}
		})
	}
}

func TestTriple(t *testing.T) {
	for _, tc := range []struct {
		v       [numPhases]float64
		noAfter bool
		want    string
	}{
		{[numPhases]float64{1.234, 5, 0.5}, false, "1.23 / 5.00 / 0.50"},
		{[numPhases]float64{1, 2, 0}, true, "1.00 / 2.00 / –"},
		{[numPhases]float64{1, math.Inf(1), 2}, false, "1.00 / >1s / 2.00"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := triple(tc.v, "%.2f", tc.noAfter); got != tc.want {
				t.Errorf("triple(%v, %q, %v) = %q, want %q", tc.v, "%.2f", tc.noAfter, got, tc.want)
			}
		})
	}
}

func TestAttacksMarkdown(t *testing.T) {
	ok := attackResult{Name: "replay", What: "re-sends", Windows: [numPhases]float64{3, 3, 3},
		Metrics: []metricValue{{Label: "coalesced", Start: 2, Values: [numPhases]float64{2, 51, 51}}, {Label: "paused", Gauge: true, Values: [numPhases]float64{0, 1, 0}}},
		Bounds:  []bound{{What: "coalesce", OK: true}}}
	bad := attackResult{Name: "descriptors", What: "a|b", Windows: [numPhases]float64{3, 3, 3}, Bounds: []bound{{What: "good clients lost nothing", OK: false}}}
	bad.Good.ZMQ[1].Lost = 3
	skipped := attackResult{Name: "fd", Skipped: "prlimit not found"}
	md := attacksMarkdown([]attackResult{ok, bad, skipped}, options{attackRate: 1000})
	containsAll(t, "attacksMarkdown", md,
		"| replay | 0.00 / 0.00 / 0.00 | 0 |",
		"| descriptors | 0.00 / 0.00 / 0.00 | 0 | 0.00 / 0.00 / 0.00 | 3 |",
		"**FAILED**",
		"coalesced +49, paused 1 during, 0 after",
		"a\\|b",
		"| fd | skipped: prlimit not found |",
		"ZeroMQ 0 / 3 / 0",
	)
	if ok.verdict() != "held (1 checks)" || !strings.HasPrefix(bad.verdict(), "FAILED: good clients") || bad.held() {
		t.Errorf("verdicts: %q, %q, held %v", ok.verdict(), bad.verdict(), bad.held())
	}
}

func TestAttackSectionBesideTheLoadtestSection(t *testing.T) {
	path := t.TempDir() + "/b.md"
	os.WriteFile(path, []byte("# Record\n\nhand-written\n"), 0o644)
	steps := []func() error{
		func() error { return updateMarkdown(path, "standard 1\n") },
		func() error { return replaceSection(path, attackBeginMark, attackEndMark, "Attacks", "attacks 1\n") },
		func() error { return updateMarkdown(path, "standard 2\n") },
		func() error { return replaceSection(path, attackBeginMark, attackEndMark, "Attacks", "attacks 2\n") },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	b, _ := os.ReadFile(path)
	s := string(b)
	want := "# Record\n\nhand-written\n\n## Latest `make bench` run\n\n" + beginMark + "\nstandard 2\n" + endMark + "\n\n## Attacks\n\n" + attackBeginMark + "\nattacks 2\n" + attackEndMark + "\n"
	if s != want {
		t.Fatalf("after four updates the file is:\n%s\nwant:\n%s", s, want)
	}
}
