package demofeed_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mdgate/mdgate/demofeed"
)

func TestInstrumentsDistinctAndDeterministic(t *testing.T) {
	a, b := demofeed.Instruments(300, 7), demofeed.Instruments(300, 7)
	seen := map[string]bool{}
	for i, in := range a {
		if seen[in.Topic] {
			t.Fatalf("duplicate topic %q", in.Topic)
		}
		seen[in.Topic] = true
		if b[i].Topic != in.Topic {
			t.Fatalf("Instruments(300, 7)[%d] = %q then %q, want the same", i, in.Topic, b[i].Topic)
		}
	}
	if len(a) != 300 {
		t.Errorf("len(Instruments(300)) = %d, want 300", len(a))
	}
}

func TestNextIsJSON(t *testing.T) {
	f := demofeed.New(50, 1)
	for range 1000 {
		topic, payload := f.Next(time.Unix(0, 42))
		var v struct {
			Sym          string
			Px, Bid, Ask float64
			Ts           int64
		}
		if err := json.Unmarshal(payload, &v); err != nil {
			t.Fatalf("Next() payload %q: %v", payload, err)
		}
		if !strings.HasSuffix(topic, "."+v.Sym) || v.Px <= 0 || v.Bid > v.Ask || v.Ts != 42 {
			t.Fatalf("Next() = %q %s: want topic ending in sym, px > 0, bid <= ask, ts 42", topic, payload)
		}
	}
}

func ExampleInstruments() {
	for _, in := range demofeed.Instruments(3, 1) {
		fmt.Println(in.Topic)
	}
	// Output:
	// md.fx.EURUSD
	// md.fx.USDJPY
	// md.fx.GBPUSD
}
