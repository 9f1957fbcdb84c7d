package main

import (
	"fmt"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.9, 90 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {0.999, 100 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentiles(s, tc.q)[0]; got != tc.want {
			t.Errorf("percentiles(1..100ms, %v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := percentiles(nil, 0.5)[0]; got != 0 {
		t.Errorf("percentiles(nil) = %v, want 0", got)
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
		got, ok := sendTime([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("sendTime(%q) = %v, %v, want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
