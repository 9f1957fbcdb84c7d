package snapshot

import (
	"context"
	"encoding/binary"
	"fmt"
)

// CmdSince asks for the retained updates of one topic after a point:
// [CmdSince, topic, epoch (8 bytes BE), seq (8 bytes BE)]. The reply is one
// VAL per update, in order, then [END, count, epoch, status, missed]
// (docs/snapshot.md).
const CmdSince = "SINCE"

// Error codes of ERR replies to a bad SINCE (with ErrBadRequest for a wrong
// number of frames).
const (
	ErrBadSeq       = "bad_seq"        // the epoch or seq frame is not 8 bytes
	ErrTopicTooLong = "topic_too_long" // a topic over MaxPrefix bytes
)

// Status says how the updates of a SINCE reply follow the point asked
// from; its String is the word in the END frame and a metric label.
type Status uint8

const (
	// StatusNone: not a SINCE reply (a SNAP's END carries no status).
	StatusNone Status = iota
	// Recovered: every update after the point was sent, up to the topic's
	// latest when the request started to be served.
	Recovered
	// Gap: the updates sent are every one retained after the point, in
	// order, but some are gone (evicted from the history, too old, or of an
	// epoch no longer held). Result.Missed counts them (0: not known, an
	// epoch changed). The seqs of the updates sent show where.
	Gap
	// NoHistory: no history is kept for the topic (no rule covers it, or
	// it is not in the cache: never seen, deleted, expired or refused by a
	// cache bound). Take a SNAP of the topic instead.
	NoHistory
	numStatus
)

var statusWords = [numStatus]string{"", "recovered", "gap", "nohistory"}

func (s Status) String() string {
	if s >= numStatus {
		return fmt.Sprintf("status(%d)", uint8(s))
	}
	return statusWords[s]
}

// parseStatus reads an END's status word; false for an unknown one.
func parseStatus(b []byte) (Status, bool) {
	for s := Recovered; s < numStatus; s++ {
		if string(b) == statusWords[s] {
			return s, true
		}
	}
	return StatusNone, false
}

// SinceRequest returns the frames of a SINCE for topic after the update
// (epoch, seq) the client holds: seq 0 asks for every retained update of
// the epoch.
func SinceRequest(topic string, epoch, seq uint64) [][]byte {
	return [][]byte{[]byte(CmdSince), []byte(topic),
		binary.BigEndian.AppendUint64(nil, epoch), binary.BigEndian.AppendUint64(nil, seq)}
}

// Since asks the server at endpoint for the retained updates of topic after
// the update (epoch, seq). Result.Values are the updates in order;
// Result.Status and Result.Missed say whether they are all there are.
func Since(ctx context.Context, endpoint, topic string, epoch, seq uint64) (*Result, error) {
	return Request(ctx, endpoint, SinceRequest(topic, epoch, seq))
}
