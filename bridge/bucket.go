package bridge

import "time"

// bucket is a token bucket: burst tokens, one more every refill. Owned by
// one connection's reader.
type bucket struct {
	tokens, burst int
	refill        time.Duration
	last          time.Time
}

func newBucket(burst int, refill time.Duration) *bucket {
	return &bucket{tokens: burst, burst: burst, refill: refill}
}

// take spends a token at now and reports whether there was one.
func (b *bucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.last = now
	}
	if gained := int(now.Sub(b.last) / b.refill); gained > 0 {
		b.tokens = min(b.burst, b.tokens+gained)
		b.last = b.last.Add(time.Duration(gained) * b.refill)
	}
	if b.tokens == 0 {
		return false
	}
	b.tokens--
	return true
}
