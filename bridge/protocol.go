package bridge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/mdgate/mdgate/tick"
)

// Request is one client message.
type Request struct {
	Op            string                 `json:"op"`
	ID            json.RawMessage        `json:"id,omitempty"` // echoed in the reply
	Topics        []string               `json:"topics,omitempty"`
	Prefixes      []string               `json:"prefixes,omitempty"`
	Snapshot      *bool                  `json:"snapshot,omitempty"` // default true
	Slow          string                 `json:"slow,omitempty"`     // disconnect | conflate
	MaxLagMs      int64                  `json:"max_lag_ms,omitempty"`
	MaxQueueBytes int                    `json:"max_queue_bytes,omitempty"`
	Resume        map[string]ResumePoint `json:"resume,omitempty"`
	ThrottleMs    int64                  `json:"throttle_ms,omitempty"` // subscribe: at most one update per topic per interval
	// op resume: the compact form, the epoch (and term) named once for
	// many topics.
	Epoch string            `json:"epoch,omitempty"`
	Term  uint16            `json:"term,omitempty"`
	Seqs  map[string]uint64 `json:"seqs,omitempty"`
}

// ResumePoint is the last update of a topic a client saw.
type ResumePoint struct {
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch"` // 16 hex digits
	// Term is the update's term (a failover pair's; 0 or absent outside
	// one). With it the gateway tells a client whose update at Seq is not
	// its own (stamped by an active that was replaced) that it diverged.
	Term uint16 `json:"term,omitempty"`
}

// ErrorCode is the code of an error frame; its String is what the frame
// carries and the fixed label of mdgate_ws_errors_total{code}.
type ErrorCode uint8

// Error codes sent in error frames (docs/protocol.md).
const (
	CodeBadJSON     ErrorCode = iota // bad_json
	CodeBadRequest                   // bad_request
	CodeUnknownOp                    // unknown_op
	CodeBadFrame                     // bad_frame: a binary frame
	CodeTooManySubs                  // too_many_subscriptions
	CodeRateLimited                  // rate_limited
	CodeForbidden                    // forbidden: the token does not cover a topic
	// CodeSnapshotBusy: the connection has blackbox.MaxPendingSnapshots
	// snapshots still being sent; the subscribe is refused whole.
	CodeSnapshotBusy
	// CodeTooManyResume: a resume would hold more than MaxResumePoints.
	CodeTooManyResume
	numErrorCodes
)

var errorCodeNames = [numErrorCodes]string{
	CodeBadJSON:       "bad_json",
	CodeBadRequest:    "bad_request",
	CodeUnknownOp:     "unknown_op",
	CodeBadFrame:      "bad_frame",
	CodeTooManySubs:   "too_many_subscriptions",
	CodeRateLimited:   "rate_limited",
	CodeForbidden:     "forbidden",
	CodeSnapshotBusy:  "snapshot_busy",
	CodeTooManyResume: "too_many_resume_points",
}

func (c ErrorCode) String() string {
	if c >= numErrorCodes {
		return fmt.Sprintf("ErrorCode(%d)", uint8(c))
	}
	return errorCodeNames[c]
}

// MarshalText makes the code its name in JSON.
func (c ErrorCode) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// MaxResumePoints bounds the resume points one connection holds.
const MaxResumePoints = 100_000

// MaxThrottle bounds throttle_ms.
const MaxThrottle = 60_000

// ProtoError is a request the bridge refuses, with its code.
type ProtoError struct {
	Code ErrorCode
	Msg  string
}

func (e *ProtoError) Error() string { return e.Code.String() + ": " + e.Msg }

// MaxTopicLen bounds each topic and prefix in a request.
const MaxTopicLen = 1024

// ParseRequest reads and validates one client message.
func ParseRequest(b []byte) (*Request, error) {
	var r Request
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return &r, &ProtoError{CodeBadRequest, fmt.Sprintf("field %q: want %s", ute.Field, ute.Type)}
		}
		if bytes.HasPrefix(bytes.TrimSpace([]byte(err.Error())), []byte("json: unknown field")) {
			return &r, &ProtoError{CodeBadRequest, err.Error()}
		}
		return &r, &ProtoError{CodeBadJSON, err.Error()}
	}
	if dec.More() {
		return &r, &ProtoError{CodeBadJSON, "more than one JSON value in a frame"}
	}
	switch r.Op {
	case "subscribe", "unsubscribe":
		if len(r.Topics)+len(r.Prefixes) == 0 {
			return &r, &ProtoError{CodeBadRequest, r.Op + " needs topics or prefixes"}
		}
		for _, list := range [][]string{r.Topics, r.Prefixes} {
			for _, t := range list {
				if len(t) > MaxTopicLen {
					return &r, &ProtoError{CodeBadRequest, fmt.Sprintf("topic longer than %d bytes", MaxTopicLen)}
				}
			}
		}
		for _, t := range r.Topics {
			if t == "" {
				return &r, &ProtoError{CodeBadRequest, `empty topic (use prefixes [""] for everything)`}
			}
		}
		if r.MaxLagMs < 0 || r.MaxQueueBytes < 0 {
			return &r, &ProtoError{CodeBadRequest, "limits must not be negative"}
		}
		if r.ThrottleMs < 0 || r.ThrottleMs > MaxThrottle {
			return &r, &ProtoError{CodeBadRequest, fmt.Sprintf("throttle_ms %d: want 0 to %d", r.ThrottleMs, MaxThrottle)}
		}
		for topic, p := range r.Resume {
			if _, err := parseEpoch(p.Epoch); err != nil {
				return &r, &ProtoError{CodeBadRequest, fmt.Sprintf("resume %q: %v", topic, err)}
			}
		}
	case "resume":
		if _, err := parseEpoch(r.Epoch); err != nil {
			return &r, &ProtoError{CodeBadRequest, fmt.Sprintf("resume epoch: %v", err)}
		}
		if len(r.Seqs) == 0 {
			return &r, &ProtoError{CodeBadRequest, `resume needs "seqs": {"topic": seq, ...}`}
		}
		for t := range r.Seqs {
			if t == "" || len(t) > MaxTopicLen {
				return &r, &ProtoError{CodeBadRequest, fmt.Sprintf("resume topic of %d bytes: want 1 to %d", len(t), MaxTopicLen)}
			}
		}
	case "ping":
	case "":
		return &r, &ProtoError{CodeBadRequest, `missing "op"`}
	default:
		return &r, &ProtoError{CodeUnknownOp, fmt.Sprintf("unknown op %q", r.Op)}
	}
	return &r, nil
}

func parseEpoch(s string) (uint64, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("epoch %q: want 16 hex digits", s)
	}
	return strconv.ParseUint(s, 16, 64)
}

// EncodeUpdate is the JSON wire format of a live update (a blackbox.Encoder).
func EncodeUpdate(m *tick.Message) []byte { return appendMessage(nil, "update", m, note{}) }

// note is what a message says beyond its stamp and payload.
type note struct {
	gap       bool   // updates before this one are gone (or it starts another epoch)
	missed    uint64 // with gap: how many, 0 when not known
	replay    bool   // a retained update replayed on resume, not a live one
	recovered bool   // the first replayed update of its topic, directly after the client's point
	diverged  bool   // the client holds a seq past this gateway's latest: its updates after this one's seq were never here (a failover)
}

// appendMessage encodes an update or snapshot value. A payload that is valid
// JSON in valid UTF-8 is embedded as is (compacted onto one line); anything
// else is base64 with "enc":"base64"; more than one payload frame goes to
// "frames".
func appendMessage(b []byte, op string, m *tick.Message, n note) []byte {
	b = append(b, `{"op":"`...)
	b = append(b, op...)
	b = append(b, `","topic":`...)
	b = appendString(b, m.Topic)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, m.Stamp.Seq, 10)
	b = append(b, `,"epoch":"`...)
	b = appendHex16(b, m.Stamp.Epoch)
	b = append(b, `","ts":`...)
	b = strconv.AppendInt(b, m.Stamp.Ingress/1000, 10)
	if m.Stamp.Term != 0 {
		b = append(b, `,"term":`...)
		b = strconv.AppendUint(b, uint64(m.Stamp.Term), 10)
	}
	if m.Stamp.Flags&tick.FlagDelete != 0 {
		b = append(b, `,"deleted":true`...)
	}
	if m.Stamp.Flags&tick.FlagStale != 0 {
		b = append(b, `,"stale":true`...)
	}
	if n.replay {
		b = append(b, `,"replay":true`...)
	}
	if n.recovered {
		b = append(b, `,"recovered":true`...)
	}
	if n.diverged {
		b = append(b, `,"diverged":true`...)
	}
	if n.gap {
		b = append(b, `,"gap":true`...)
		if n.missed > 0 {
			b = append(b, `,"missed":`...)
			b = strconv.AppendUint(b, n.missed, 10)
		}
	}
	payload := m.Payload()
	switch {
	case len(payload) == 0 || m.Stamp.Flags&tick.FlagDelete != 0:
	case len(payload) == 1 && len(payload[0]) > 0 && json.Valid(payload[0]) && utf8.Valid(payload[0]):
		// json.Valid lets invalid UTF-8 inside strings through, and a text
		// frame holding it must fail in every browser (RFC 6455 8.1): such
		// payloads go as base64 below.
		b = append(b, `,"data":`...)
		if bytes.ContainsAny(payload[0], "\r\n") { // keep one message per line
			var buf bytes.Buffer
			json.Compact(&buf, payload[0])
			b = append(b, buf.Bytes()...)
		} else {
			b = append(b, payload[0]...)
		}
	case len(payload) == 1:
		b = append(b, `,"enc":"base64","data":"`...)
		b = base64.StdEncoding.AppendEncode(b, payload[0])
		b = append(b, '"')
	default:
		b = append(b, `,"enc":"base64","frames":[`...)
		for i, f := range payload {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, f)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendHex16(b []byte, v uint64) []byte {
	const hex = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		b = append(b, hex[(v>>uint(i))&0xf])
	}
	return b
}

// appendString appends s as a JSON string; plain ASCII takes the fast path.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// reply builds a gateway -> client control message.
func reply(op string, id json.RawMessage, fields map[string]any) []byte {
	m := map[string]any{"op": op}
	if len(id) > 0 {
		m["id"] = id
	}
	for k, v := range fields {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}

func errorReply(id json.RawMessage, e *ProtoError) []byte {
	return reply("error", id, map[string]any{"code": e.Code.String(), "message": e.Msg})
}
