package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	h := newHist()
	for i := 1; i <= 1000; i++ {
		record(h, time.Duration(i)*time.Millisecond)
	}
	got := summarize(h)
	for _, tc := range []struct {
		name      string
		got, want float64
	}{{"p50", got.P50, 500}, {"p90", got.P90, 900}, {"p99", got.P99, 990}, {"p99.9", got.P999, 999}, {"max", got.Max, 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			if d := tc.got - tc.want; d < -tc.want/500 || d > tc.want/500 { // 3 significant digits
				t.Errorf("summarize(1..1000ms).%s = %v ms, want %v", tc.name, tc.got, tc.want)
			}
		})
	}
	if got.Count != 1000 {
		t.Errorf("count = %d, want 1000", got.Count)
	}
	if e := summarize(newHist()); e.P99 != 0 || e.Count != 0 {
		t.Errorf("summarize(empty) = %+v, want zeros", e)
	}
}

func TestTimeline(t *testing.T) {
	got := timeline([]int64{0, 10, 30, 30}, 500*time.Millisecond)
	if fmt.Sprint(got) != "[20 40 0]" {
		t.Errorf("timeline = %v, want [20 40 0]", got)
	}
}

func TestAssignIsSeededAndDistinct(t *testing.T) {
	a, b := assign(50, 5, 100, 7), assign(50, 5, 100, 7)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("assign(seed 7) differs between runs")
	}
	for c, topics := range a {
		seen := map[int]bool{}
		for _, x := range topics {
			if seen[x] || x < 0 || x >= 100 {
				t.Fatalf("client %d topics %v: repeated or out of range", c, topics)
			}
			seen[x] = true
		}
		if len(topics) != 5 {
			t.Fatalf("client %d has %d topics, want 5", c, len(topics))
		}
	}
}

func TestParseSendTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{`{"op":"update","topic":"t","seq":1,"data":{"t":12345,"pad":"x"}}`, 12345, true},
		{`{"op":"ack"}`, 0, false},
		{`{"op":"update","data":{"t":}}`, 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := sendTime([]byte(tc.in))
			if got != tc.want || ok != tc.ok {
				t.Errorf("sendTime(%q) = %v, %v, want %v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestUpdateMarkdownReplacesOnlyItsSection(t *testing.T) {
	path := t.TempDir() + "/b.md"
	os.WriteFile(path, []byte("# Record\n\nhand-written\n"), 0o644)
	if err := updateMarkdown(path, "first\n"); err != nil {
		t.Fatal(err)
	}
	if err := updateMarkdown(path, "second\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	s := string(b)
	if !strings.HasPrefix(s, "# Record\n\nhand-written\n") || strings.Contains(s, "first") || strings.Count(s, "second") != 1 || strings.Count(s, beginMark) != 1 {
		t.Fatalf("after two updates the file is:\n%s", s)
	}
}

func TestSamplesInto(t *testing.T) {
	var s samples
	for _, d := range []time.Duration{0, 500 * time.Nanosecond, 3 * time.Millisecond, 2 * time.Minute} {
		s.record(d)
	}
	h := newHist()
	s.into(h)
	if got, want := h.TotalCount(), int64(4); got != want {
		t.Fatalf("TotalCount() = %d, want %d", got, want)
	}
	// Below 1 µs counts as 1 µs, past a minute as a minute, as record does.
	for _, tc := range []struct {
		q    float64
		want int64
	}{{25, 1}, {50, 1}, {75, 3000}, {100, 60_000_000}} {
		if got := h.ValueAtQuantile(tc.q); got < tc.want || got > tc.want+tc.want/1000 { // 3 significant digits
			t.Errorf("ValueAtQuantile(%v) = %d, want %d", tc.q, got, tc.want)
		}
	}
}
