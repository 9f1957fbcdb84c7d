package proxy

/*
#cgo !windows pkg-config: libzmq
#include <zmq.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

// A receive batch: whole multipart messages taken with one call. The frames
// stay in libzmq's zmq_msg_t until the next call (or mdg_rb_free), so Go
// copies them out without a cgo call per frame.
typedef struct {
	int cap_frames, cap_msgs;
	int nframes, nmsgs;
	zmq_msg_t *msgs;
	void **data;
	size_t *size;
	int *msg_frames; // frames per message; negative: more than the cap (frames not kept)
} mdg_rb;

static mdg_rb *mdg_rb_new(int cap_frames, int cap_msgs) {
	mdg_rb *b = calloc(1, sizeof *b);
	b->cap_frames = cap_frames;
	b->cap_msgs = cap_msgs;
	b->msgs = calloc(cap_frames, sizeof(zmq_msg_t));
	b->data = calloc(cap_frames, sizeof(void *));
	b->size = calloc(cap_frames, sizeof(size_t));
	b->msg_frames = calloc(cap_msgs, sizeof(int));
	return b;
}

static void mdg_rb_release(mdg_rb *b) {
	for (int i = 0; i < b->nframes; i++) zmq_msg_close(&b->msgs[i]);
	b->nframes = b->nmsgs = 0;
}

static void mdg_rb_free(mdg_rb *b) {
	mdg_rb_release(b);
	free(b->msgs); free(b->data); free(b->size); free(b->msg_frames); free(b);
}

// mdg_recv_batch receives whole messages without blocking until max_msgs,
// until the frame space left is under max_frames, or until none is waiting.
// A message with more than max_frames frames is drained and recorded as a
// negative count. Returns 0, or an errno other than EAGAIN/EINTR.
static int mdg_recv_batch(void *sock, mdg_rb *b, int max_msgs, int max_frames) {
	mdg_rb_release(b);
	if (max_msgs > b->cap_msgs) max_msgs = b->cap_msgs;
	while (b->nmsgs < max_msgs && b->cap_frames - b->nframes >= max_frames) {
		int count = 0, more = 1, flags = ZMQ_DONTWAIT, start = b->nframes;
		while (more) {
			zmq_msg_t scratch, *m = count < max_frames ? &b->msgs[b->nframes] : &scratch;
			zmq_msg_init(m);
			if (zmq_msg_recv(m, sock, flags) < 0) {
				int e = errno;
				zmq_msg_close(m);
				if (count == 0 && (e == EAGAIN || e == EINTR)) return 0;
				if (count > 0 && e == EINTR) continue; // the rest of the message is there
				for (int i = start; i < b->nframes; i++) zmq_msg_close(&b->msgs[i]);
				b->nframes = start;
				return e;
			}
			more = zmq_msg_more(m);
			if (count < max_frames) {
				b->data[b->nframes] = zmq_msg_data(m);
				b->size[b->nframes] = zmq_msg_size(m);
				b->nframes++;
			} else {
				zmq_msg_close(m);
			}
			count++;
			flags = 0; // a multipart message arrives whole: the rest is waiting
		}
		b->msg_frames[b->nmsgs++] = count > max_frames ? -count : count;
	}
	return 0;
}

// mdg_send_batch sends nmsgs messages laid out as concatenated frame bytes
// (buf), frame sizes, and frames per message, never blocking. Returns how
// many messages failed (not sent, or cut short).
static int mdg_send_batch(void *sock, const char *buf, const uint32_t *sizes, const uint16_t *msg_frames, int nmsgs) {
	int failed = 0;
	for (int i = 0; i < nmsgs; i++) {
		int n = msg_frames[i], ok = 1;
		for (int f = 0; f < n; f++) {
			int flags = ZMQ_DONTWAIT | (f < n - 1 ? ZMQ_SNDMORE : 0);
			if (ok) {
				while (zmq_send(sock, buf, *sizes, flags) < 0) {
					if (errno == EINTR) continue;
					ok = 0;
					break;
				}
			}
			buf += *sizes++;
		}
		if (!ok) failed++;
	}
	return failed;
}

// mdg_forward_batch sends, for each message of the batch, its first
// keep[i] frames (none when 0) as one message, never blocking. The frames
// are libzmq's own, moved without a copy (zmq_proxy's way); a sent frame is
// left empty for the release. Returns how many messages failed.
static int mdg_forward_batch(void *sock, mdg_rb *b, const int16_t *keep, int max_frames) {
	int failed = 0, f = 0;
	for (int i = 0; i < b->nmsgs; i++) {
		int n = b->msg_frames[i], k = keep[i], ok = 1;
		for (int j = 0; j < k && ok; j++) {
			int flags = ZMQ_DONTWAIT | (j < k - 1 ? ZMQ_SNDMORE : 0);
			while (zmq_msg_send(&b->msgs[f + j], sock, flags) < 0) {
				if (errno == EINTR) continue;
				ok = 0;
				break;
			}
		}
		if (!ok) failed++;
		f += n < 0 ? max_frames : n;
	}
	return failed;
}

static int mdg_socket_type(void *sock) {
	int t = -1;
	size_t n = sizeof t;
	if (zmq_getsockopt(sock, ZMQ_TYPE, &t, &n) < 0) return -1;
	return t;
}
*/
import "C"

import (
	"fmt"
	"slices"
	"syscall"
	"unsafe"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/tick"
)

// handle returns the libzmq socket pointer inside a pebbe/zmq4 Socket, whose
// first field it is (v1.4.0). checkHandle verifies it before any use.
func handle(s *zmq.Socket) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(s))
}

// checkHandle fails if handle does not give s's libzmq socket, e.g. after a
// pebbe/zmq4 upgrade changed its layout.
func checkHandle(s *zmq.Socket) error {
	want, err := s.GetType()
	if err != nil {
		return err
	}
	if got := C.mdg_socket_type(handle(s)); int(got) != int(want) {
		return fmt.Errorf("pebbe/zmq4 socket layout changed: handle gives type %d, want %d", got, want)
	}
	return nil
}

// recvBatch receives whole messages with one cgo call. Owned by the loop.
type recvBatch struct {
	c         *C.mdg_rb
	maxFrames int     // the cap of the last recv: frames kept of an oversized message
	keep      []int16 // by message: the frames forward sends (0: none)
	kept      int     // messages with keep > 0
}

func newRecvBatch(maxMsgs, capFrames int) *recvBatch {
	return &recvBatch{c: C.mdg_rb_new(C.int(capFrames), C.int(maxMsgs))}
}

func (b *recvBatch) free() { C.mdg_rb_free(b.c) }

// recv fills the batch from sock. Frames of earlier calls are released.
func (b *recvBatch) recv(sock *zmq.Socket, maxMsgs, maxFrames int) error {
	b.maxFrames = maxFrames
	b.kept = 0
	if rc := C.mdg_recv_batch(handle(sock), b.c, C.int(maxMsgs), C.int(maxFrames)); rc != 0 {
		return syscall.Errno(rc)
	}
	return nil
}

// forward marks the first n frames of message i (as numbered by each) to
// be sent by send.
func (b *recvBatch) forward(i, n int) {
	b.keep[i] = int16(n)
	b.kept++
}

// send sends the messages marked by forward, in batch order, moving
// libzmq's frames without a copy; it returns how many were marked and how
// many of those failed.
func (b *recvBatch) send(sock *zmq.Socket) (n, failed int) {
	if b.kept == 0 {
		return 0, 0
	}
	failed = int(C.mdg_forward_batch(handle(sock), b.c, (*C.int16_t)(unsafe.Pointer(&b.keep[0])), C.int(b.maxFrames)))
	n = b.kept
	b.kept = 0 // each clears keep for the next batch
	return n, failed
}

// inlineBytes is the most frame bytes a message of up to two frames may
// have to be copied into Go memory with one allocation (an inlineMsg, a
// 256-byte size class: what the message, its frame headers and its bytes
// took in three allocations). Ticks are mostly smaller.
const inlineBytes = 128

// inlineMsg is a small message, its frame headers and its bytes in one
// allocation.
type inlineMsg struct {
	m      tick.Message
	frames [2][]byte
	data   [inlineBytes]byte
}

// each calls fn for every message of the batch, numbered from 0, as a
// Message holding only its Frames, copied into Go memory (one allocation
// for a message of up to two frames and inlineBytes; three for a larger
// one); or with n < 0 and a nil Message for one that had -n frames, more
// than the cap.
func (b *recvBatch) each(fn func(i, n int, m *tick.Message)) {
	nm := int(b.c.nmsgs)
	if nm == 0 {
		return
	}
	b.keep = slices.Grow(b.keep[:0], nm)[:nm]
	clear(b.keep)
	counts := unsafe.Slice(b.c.msg_frames, nm)
	data := unsafe.Slice(b.c.data, int(b.c.nframes))
	sizes := unsafe.Slice(b.c.size, int(b.c.nframes))
	f := 0
	for i, n := range counts {
		if n < 0 { // the first maxFrames frames are held; skip them
			f += b.maxFrames
			fn(i, int(n), nil)
			continue
		}
		kept := int(n)
		total := 0
		for j := f; j < f+kept; j++ {
			total += int(sizes[j])
		}
		var (
			m      *tick.Message
			buf    []byte
			frames [][]byte
		)
		if kept <= 2 && total <= inlineBytes {
			im := new(inlineMsg)
			m, buf, frames = &im.m, im.data[:total], im.frames[:kept:kept]
		} else {
			m, buf, frames = new(tick.Message), make([]byte, total), make([][]byte, kept)
		}
		off := 0
		for j := range kept {
			sz := int(sizes[f+j])
			if sz > 0 {
				copy(buf[off:off+sz], unsafe.Slice((*byte)(data[f+j]), sz))
			}
			frames[j] = buf[off : off+sz : off+sz]
			off += sz
		}
		f += kept
		m.Frames = frames
		fn(i, kept, m)
	}
}

// sendBatch queues messages for one socket and sends them with one cgo
// call. Owned by the loop.
type sendBatch struct {
	buf    []byte
	sizes  []uint32
	frames []uint16
	hi     int // the most bytes queued by a flush in this window
	nflush int // flushes in this window
}

// sendBatchKeep is what a batch keeps whatever its use: past it, a buffer
// grown by a burst is let go once a window of flushes used a quarter of it.
const (
	sendBatchKeep   = 1 << 20
	sendBatchWindow = 64
)

// add queues frames, then the optional trailer frame, as one message.
func (b *sendBatch) add(frames [][]byte, trailer []byte) {
	n := len(frames)
	for _, f := range frames {
		b.buf = append(b.buf, f...)
		b.sizes = append(b.sizes, uint32(len(f)))
	}
	if trailer != nil {
		b.buf = append(b.buf, trailer...)
		b.sizes = append(b.sizes, uint32(len(trailer)))
		n++
	}
	b.frames = append(b.frames, uint16(n))
}

func (b *sendBatch) len() int { return len(b.frames) }

// flush sends every queued message and returns how many failed.
func (b *sendBatch) flush(sock *zmq.Socket) int {
	if len(b.frames) == 0 {
		return 0
	}
	var buf *C.char
	if len(b.buf) > 0 {
		buf = (*C.char)(unsafe.Pointer(&b.buf[0]))
	}
	failed := C.mdg_send_batch(handle(sock), buf, (*C.uint32_t)(unsafe.Pointer(&b.sizes[0])),
		(*C.uint16_t)(unsafe.Pointer(&b.frames[0])), C.int(len(b.frames)))
	b.hi = max(b.hi, len(b.buf))
	b.buf, b.sizes, b.frames = b.buf[:0], b.sizes[:0], b.frames[:0]
	if b.nflush++; b.nflush == sendBatchWindow {
		if cap(b.buf) > sendBatchKeep && b.hi < cap(b.buf)/4 {
			b.buf, b.sizes, b.frames = nil, nil, nil
		}
		b.hi, b.nflush = 0, 0
	}
	return int(failed)
}
