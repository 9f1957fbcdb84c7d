package blackbox

import (
	"slices"
	"sync"
	"time"
)

// entry is one subscription of one client in a shard's index.
type entry struct {
	c        *Client
	conflate bool
	throttle time.Duration
}

// index holds one shard's subscriptions. Exact topics live only in the shard
// their topic hashes to; prefixes live in every shard.
type index struct {
	mu     sync.RWMutex
	exact  map[string][]entry // guarded by mu
	prefix map[string][]entry // guarded by mu
	lens   []int              // distinct prefix lengths, ascending; guarded by mu
	nlen   map[int]int        // prefixes per length; guarded by mu
}

func newIndex() *index {
	return &index{exact: map[string][]entry{}, prefix: map[string][]entry{}, nlen: map[int]int{}}
}

// table is the map of exact topics or of prefixes. x.mu is held.
func (x *index) table(isPrefix bool) map[string][]entry {
	if isPrefix {
		return x.prefix
	}
	return x.exact
}

// add adds or updates c's subscription to key; it reports whether it is new.
func (x *index) add(key string, isPrefix bool, e entry) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.table(isPrefix)
	list := m[key]
	for i := range list {
		if list[i].c == e.c {
			list[i] = e
			return false
		}
	}
	m[key] = append(list, e)
	if isPrefix && len(list) == 0 {
		n := len(key)
		if x.nlen[n]++; x.nlen[n] == 1 {
			i, _ := slices.BinarySearch(x.lens, n)
			x.lens = slices.Insert(x.lens, i, n)
		}
	}
	return true
}

// remove removes c's subscription to key and reports whether it was there.
func (x *index) remove(key string, isPrefix bool, c *Client) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.table(isPrefix)
	list := m[key]
	i := slices.IndexFunc(list, func(e entry) bool { return e.c == c })
	if i < 0 {
		return false
	}
	last := len(list) - 1
	list[i] = list[last]
	list[last] = entry{}
	if last == 0 {
		delete(m, key)
		if isPrefix {
			n := len(key)
			if x.nlen[n]--; x.nlen[n] == 0 {
				delete(x.nlen, n)
				j, _ := slices.BinarySearch(x.lens, n)
				x.lens = slices.Delete(x.lens, j, j+1)
			}
		}
	} else {
		m[key] = list[:last]
	}
	return true
}

// match appends every subscription matching topic to dst: the exact ones,
// then one lookup per distinct prefix length, so the cost grows with the
// number of lengths in use, not the number of subscriptions.
func (x *index) match(topic string, dst []entry) []entry {
	x.mu.RLock()
	dst = append(dst, x.exact[topic]...)
	for _, n := range x.lens {
		if n > len(topic) {
			break
		}
		dst = append(dst, x.prefix[topic[:n]]...)
	}
	x.mu.RUnlock()
	return dst
}
