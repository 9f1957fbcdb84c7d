package demofeed

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/zsock"
)

// Instrument is one synthetic instrument.
type Instrument struct {
	Topic string
	Sym   string
	Px    float64
	Open  float64
	tick  float64
}

// Instruments returns n deterministic instruments across equities, FX and
// futures, under md.eq., md.fx. and md.fut.
func Instruments(n int, seed uint64) []Instrument {
	r := rand.New(rand.NewPCG(seed, 0x6d64676174650a))
	fx := []string{"EURUSD", "USDJPY", "GBPUSD", "AUDUSD", "USDCHF", "USDCAD", "NZDUSD", "EURGBP", "EURJPY", "GBPJPY"}
	fut := []string{"ES", "NQ", "YM", "RTY", "CL", "NG", "GC", "SI", "HG", "ZB", "ZN", "ZC", "ZS", "ZW", "6E", "6J"}
	seen := map[string]bool{}
	out := make([]Instrument, 0, n)
	add := func(topic, sym string, px, tick float64) {
		if seen[topic] || len(out) == n {
			return
		}
		seen[topic] = true
		out = append(out, Instrument{Topic: topic, Sym: sym, Px: px, Open: px, tick: tick})
	}
	for _, s := range fx {
		px := 0.6 + r.Float64()*1.2
		if s[3:] == "JPY" {
			px = 100 + r.Float64()*60
		}
		add("md.fx."+s, s, round(px, 0.0001), 0.0001)
	}
	for _, s := range fut {
		add("md.fut."+s+"Z6", s+"Z6", round(50+r.Float64()*5000, 0.25), 0.25)
	}
	for len(out) < n {
		l := 2 + r.IntN(3)
		b := make([]byte, l)
		for i := range b {
			b[i] = byte('A' + r.IntN(26))
		}
		add("md.eq."+string(b), string(b), round(5+r.Float64()*500, 0.01), 0.01)
	}
	return out
}

func round(x, tick float64) float64 { return math.Round(x/tick) * tick }

// Feed drives the random walk. Not safe for concurrent use.
type Feed struct {
	inst []Instrument
	r    *rand.Rand
	buf  []byte
}

// New returns a feed over n instruments.
func New(n int, seed uint64) *Feed {
	return &Feed{inst: Instruments(n, seed), r: rand.New(rand.NewPCG(seed, 1))}
}

// Next moves one random instrument and returns its topic and JSON payload.
// The payload is valid until the next call.
func (f *Feed) Next(now time.Time) (topic string, payload []byte) {
	in := &f.inst[f.r.IntN(len(f.inst))]
	steps := math.Round(f.r.NormFloat64() * 2)
	in.Px = math.Max(in.tick, round(in.Px+steps*in.tick, in.tick))
	spread := in.tick * float64(1+f.r.IntN(3))
	b := f.buf[:0]
	b = append(b, `{"sym":"`...)
	b = append(b, in.Sym...)
	b = append(b, `","px":`...)
	b = strconv.AppendFloat(b, in.Px, 'f', decimals(in.tick), 64)
	b = append(b, `,"bid":`...)
	b = strconv.AppendFloat(b, round(in.Px-spread/2, in.tick), 'f', decimals(in.tick), 64)
	b = append(b, `,"ask":`...)
	b = strconv.AppendFloat(b, round(in.Px+spread/2, in.tick), 'f', decimals(in.tick), 64)
	b = append(b, `,"chg":`...)
	b = strconv.AppendFloat(b, (in.Px-in.Open)/in.Open*100, 'f', 3, 64)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, int64(100*(1+f.r.IntN(50))), 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, now.UnixNano(), 10)
	b = append(b, '}')
	f.buf = b
	return in.Topic, b
}

func decimals(tick float64) int {
	d := 0
	for tick < 1 && d < 8 {
		tick *= 10
		d++
	}
	return d
}

// Publish connects a PUB socket to endpoint and publishes rate messages a
// second over n instruments until ctx is done (it returns nil) or the socket
// fails. It owns the socket. A message libzmq cannot take at once is
// skipped.
func Publish(ctx context.Context, endpoint string, rate, n int) error {
	if rate <= 0 || n <= 0 {
		return fmt.Errorf("demofeed: rate %d and instruments %d must be positive", rate, n)
	}
	open := func() (*zmq.Socket, error) {
		pub, err := zmq.NewSocket(zmq.PUB)
		if err != nil {
			return nil, fmt.Errorf("demofeed: %w", err)
		}
		if err := pub.SetLinger(0); err != nil {
			pub.Close()
			return nil, fmt.Errorf("demofeed: %w", err)
		}
		if err := pub.Connect(endpoint); err != nil {
			pub.Close()
			return nil, fmt.Errorf("demofeed connect %s: %w", endpoint, err)
		}
		return pub, nil
	}
	return zsock.Own(open, func(pub *zmq.Socket) error {
		if err := PublishOn(ctx, pub, rate, n); err != nil {
			return fmt.Errorf("demofeed %w", err)
		}
		return nil
	})
}

// PublishOn publishes rate messages a second over n instruments on pub until
// ctx is done (it returns nil) or a send fails ("send: ..."). It runs on
// the thread that owns pub (zsock.Own). A message libzmq cannot take at
// once is skipped: a PUB never blocks, past an endpoint's HWM it drops
// that endpoint's copy.
func PublishOn(ctx context.Context, pub *zmq.Socket, rate, n int) error {
	feed := New(n, 1)
	const tickEvery = 10 * time.Millisecond
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	start, sent := time.Now(), 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			due := int(now.Sub(start).Seconds() * float64(rate))
			for ; sent < due; sent++ {
				topic, payload := feed.Next(now)
				if _, err := pub.SendMessageDontwait(topic, payload); err != nil && !zsock.Temporary(err) {
					return fmt.Errorf("send: %w", err)
				}
			}
		}
	}
}
