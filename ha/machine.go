package ha

import (
	"errors"
	"fmt"
	"time"
)

// Role is a gateway's configured place in the pair (--ha-role). It never
// changes while the gateway runs.
type Role uint8

// The two roles. The values are the role byte of the wire form.
const (
	RolePrimary Role = 1
	RoleBackup  Role = 2
)

func (r Role) String() string {
	switch r {
	case RolePrimary:
		return "primary"
	case RoleBackup:
		return "backup"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

func (r Role) valid() bool { return r == RolePrimary || r == RoleBackup }

// Mode is where a gateway is in the Binary Star state machine. The values are
// bstar's state numbers and the mode byte of the wire form.
type Mode uint8

// The four modes. ModePrimary and ModeBackup are the starting modes, before
// the gateway has decided to be active or passive.
const (
	ModePrimary Mode = 1 // starting as primary: waiting for the peer
	ModeBackup  Mode = 2 // starting as backup: waiting for the peer
	ModeActive  Mode = 3 // active: stamps, publishes, accepts clients
	ModePassive Mode = 4 // passive: stands by, refuses clients while the peer lives
)

func (m Mode) String() string {
	switch m {
	case ModePrimary:
		return "primary"
	case ModeBackup:
		return "backup"
	case ModeActive:
		return "active"
	case ModePassive:
		return "passive"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

func (m Mode) valid() bool { return m >= ModePrimary && m <= ModePassive }

// Fatal errors of the state machine. After one the owner must stop serving
// and exit (bstar aborts): the pair is misconfigured or both gateways believe
// the other serves. The Machine is left unchanged.
var (
	// ErrDualPassive: both gateways are passive, so nobody serves.
	ErrDualPassive = errors.New("ha: fatal: dual passives")
	// ErrRoleConflict: the peer has our role (both primary or both backup, or
	// the peer endpoint points back at this gateway).
	ErrRoleConflict = errors.New("ha: fatal: peer has our role")
)

// Result is what one event did to a Machine.
type Result struct {
	From Mode   // the mode before the event
	Mode Mode   // the mode after it
	Term uint64 // the term after it: every entry into ModeActive takes a new one
	// Accepted is set for a ClientRequest the gateway must serve (it is, or
	// has just become, active). A refused client gets nothing, as in bstar.
	Accepted bool
	// PeerDead is set by the first Tick at or after the peer's expiry (two
	// heartbeats without a state from it), once per silence.
	PeerDead bool
}

// Changed reports whether the event moved the machine to another mode.
func (r Result) Changed() bool { return r.From != r.Mode }

func (r Result) String() string {
	s := fmt.Sprintf("%v -> %v term %d", r.From, r.Mode, r.Term)
	if r.Accepted {
		s += " accepted"
	}
	if r.PeerDead {
		s += " peer dead"
	}
	return s
}

// Machine is the Binary Star state machine of one gateway, with terms. It is
// pure: the owner passes the current time into every call, and acts on the
// Result (persist a new Term before stamping under it, start or stop
// serving, answer or drop the client). Not safe for concurrent use.
//
// Transitions (bstar's, plus the term rules; docs/ha.md has the same table).
// "Peer X" is a state from the peer in mode X; "dead" means now is at or
// after the peer's expiry (the last state from it, or the start, plus two
// heartbeats). "bump" means the new term: the smallest term above both our
// own and every term seen from the peer, odd for the primary and even for
// the backup.
//
//	mode     event           condition             next     term   client   note
//	primary  peer primary                          -        -      -        ErrRoleConflict
//	primary  peer backup                           active   bump   -        both started: primary serves
//	primary  peer active                           passive  -      -        restarted while the backup serves
//	primary  peer passive                          primary  -      -        wait: the peer goes active on our beat
//	primary  client request  peer alive            primary  -      refused  may be a failback: the backup may serve
//	primary  client request  peer dead             active   bump   accepted alone, voted in
//	primary  tick                                  primary  -      -        PeerDead once per silence
//	backup   peer primary                          backup   -      -        wait: the primary goes active
//	backup   peer backup                           -        -      -        ErrRoleConflict
//	backup   peer active                           passive  -      -        the usual start of a backup
//	backup   peer passive                          backup   -      -        wait: the peer goes active on our beat
//	backup   client request                        backup   -      refused  a starting backup never serves
//	backup   tick                                  backup   -      -        PeerDead once per silence
//	active   peer primary                          active   -      -        the peer restarts; it will go passive
//	active   peer backup                           active   -      -        the peer restarts; it will go passive
//	active   peer active     peer term < ours      active   -      -        after a split: the peer yields
//	active   peer active     peer term > ours      passive  -      -        after a split: we yield
//	active   peer active     equal, we primary     active   -      -        the backup yields
//	active   peer active     equal, we backup      passive  -      -        we yield
//	active   peer passive                          active   -      -        normal running
//	active   client request                        active   -      accepted
//	active   tick                                  active   -      -        PeerDead once per silence
//	passive  peer primary                          active   bump   -        the peer restarts (we are the backup)
//	passive  peer backup                           active   bump   -        the peer restarts (we are the primary)
//	passive  peer active                           passive  -      -        normal running
//	passive  peer passive                          -        -      -        ErrDualPassive
//	passive  client request  peer alive            passive  -      refused  the active serves
//	passive  client request  peer dead             active   bump   accepted failover
//	passive  tick                                  passive  -      -        PeerDead once per silence
//
// bstar aborts on two actives; here the terms settle them: every active
// period has a term of its own, so the older active yields within one
// heartbeat of the link healing and no (term, seq) is used twice. The
// equal-terms rows are a deterministic fallback for a lost persisted term.
// Every state from the peer also restarts its expiry (now + 2 heartbeats).
type Machine struct {
	role      Role
	mode      Mode
	term      uint64        // ours: the term of the current or last active period
	seen      uint64        // the highest term seen from the peer
	heartbeat time.Duration // the interval at which both gateways beat
	expiry    time.Time     // when the peer is dead without a further state
	deadSaid  bool          // Tick has reported this silence
}

// NewMachine returns the machine of a gateway starting in role with the term
// it persisted last (0 if it never was active), beating every heartbeat.
// The peer has two heartbeats from now to be heard before it counts as dead,
// as in bstar_start.
func NewMachine(role Role, term uint64, heartbeat time.Duration, now time.Time) (*Machine, error) {
	if !role.valid() {
		return nil, fmt.Errorf("ha: role %v, want primary or backup", role)
	}
	if heartbeat <= 0 {
		return nil, fmt.Errorf("ha: heartbeat %v, want > 0", heartbeat)
	}
	m := &Machine{role: role, term: term, heartbeat: heartbeat}
	m.mode = ModePrimary
	if role == RoleBackup {
		m.mode = ModeBackup
	}
	m.expiry = now.Add(2 * heartbeat)
	return m, nil
}

// Role is the gateway's configured role.
func (m *Machine) Role() Role { return m.role }

// Mode is the current mode.
func (m *Machine) Mode() Mode { return m.mode }

// Term is the current term: the term of the current active period, or of
// the last one if not active.
func (m *Machine) Term() uint64 { return m.term }

// PeerAlive reports whether a state came from the peer in the last two
// heartbeats (or, before the first one, whether the start was that recent).
func (m *Machine) PeerAlive(now time.Time) bool { return now.Before(m.expiry) }

// State is the state message to publish now: the owner hands it to
// Link.Beat every heartbeat.
func (m *Machine) State(epoch uint64, now time.Time) State {
	return State{Role: m.role, Mode: m.mode, Term: m.term, Epoch: epoch, Time: now.UnixNano()}
}

// Peer applies a state received from the peer. The error, if any, is fatal
// (ErrDualPassive, ErrRoleConflict, or a malformed state wrapping
// ErrNotState); the Machine is then unchanged.
func (m *Machine) Peer(s State, now time.Time) (Result, error) {
	r := m.result()
	if err := s.check(); err != nil {
		return r, err
	}
	if s.Role == m.role {
		return r, fmt.Errorf("%w: both %v (is the peer endpoint this gateway's own?)", ErrRoleConflict, m.role)
	}
	m.expiry = now.Add(2 * m.heartbeat)
	m.deadSaid = false
	m.seen = max(m.seen, s.Term)

	switch m.mode {
	case ModePrimary:
		switch s.Mode {
		case ModeBackup:
			m.activate()
		case ModeActive:
			m.mode = ModePassive
		}
	case ModeBackup:
		if s.Mode == ModeActive {
			m.mode = ModePassive
		}
	case ModeActive:
		switch {
		case s.Mode == ModeActive && (s.Term > m.term || s.Term == m.term && m.role == RoleBackup):
			m.mode = ModePassive
		case s.Mode != ModeActive && s.Term > m.term:
			// The peer holds a higher term than ours without being active (it
			// restarted after a split in which it had taken one): we re-term
			// above it and stay active, so a term only grows and every
			// reader that saw the higher one takes our stamps (docs/ha.md).
			m.term = nextTerm(m.role, s.Term)
		}
	case ModePassive:
		switch s.Mode {
		case ModePrimary, ModeBackup:
			m.activate()
		case ModePassive:
			return r, ErrDualPassive
		}
	}
	r.Mode, r.Term = m.mode, m.term
	return r, nil
}

// ClientRequest applies a client's vote: a WebSocket connection or resume, a
// snapshot request, a ZeroMQ subscription. Result.Accepted says whether to
// serve it; a passive, or a starting primary, whose peer is dead becomes
// active on it.
func (m *Machine) ClientRequest(now time.Time) Result {
	r := m.result()
	switch m.mode {
	case ModeActive:
		r.Accepted = true
	case ModePrimary, ModePassive:
		if !m.PeerAlive(now) {
			m.activate()
			r.Mode, r.Term, r.Accepted = m.mode, m.term, true
		}
	}
	return r
}

// Tick applies the passing of time. It never changes the mode (only a vote
// turns a dead peer into a takeover); Result.PeerDead reports, once per
// silence, that the peer's expiry has passed. Call it every heartbeat.
func (m *Machine) Tick(now time.Time) Result {
	r := m.result()
	if !m.PeerAlive(now) && !m.deadSaid {
		m.deadSaid = true
		r.PeerDead = true
	}
	return r
}

func (m *Machine) result() Result { return Result{From: m.mode, Mode: m.mode, Term: m.term} }

// activate enters ModeActive with a new term.
func (m *Machine) activate() {
	m.mode = ModeActive
	m.term = nextTerm(m.role, max(m.term, m.seen))
}

// nextTerm is the smallest term above floor that belongs to role: odd for
// the primary, even for the backup. The two gateways of a pair can then
// never take the same term, even when each takes over without having seen
// the other's latest one (a restart behind a cut link).
func nextTerm(role Role, floor uint64) uint64 {
	t := floor + 1
	if (t%2 == 1) != (role == RolePrimary) {
		t++
	}
	return t
}
