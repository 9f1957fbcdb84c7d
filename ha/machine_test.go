package ha_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mdgate/mdgate/ha"
)

const hb = time.Second

var t0 = time.Unix(1_764_000_000, 0)

// event is one input of the table: a state from the peer, a client's vote,
// or a tick.
type event struct {
	kind     string // "peer", "client" or "tick"
	peer     ha.Mode
	peerTerm uint64
}

func peer(m ha.Mode, term uint64) event { return event{kind: "peer", peer: m, peerTerm: term} }

var (
	client = event{kind: "client"}
	tick   = event{kind: "tick"}
)

func (e event) String() string {
	if e.kind == "peer" {
		return fmt.Sprintf("peer %v term %d", e.peer, e.peerTerm)
	}
	return e.kind
}

// peerRole is the role of a peer in mode m talking to a gateway of role
// ours: a starting mode says its role; otherwise it is the other role.
func peerRole(ours ha.Role, m ha.Mode) ha.Role {
	switch m {
	case ha.ModePrimary:
		return ha.RolePrimary
	case ha.ModeBackup:
		return ha.RoleBackup
	}
	if ours == ha.RolePrimary {
		return ha.RoleBackup
	}
	return ha.RolePrimary
}

func apply(m *ha.Machine, e event, now time.Time) (ha.Result, error) {
	switch e.kind {
	case "peer":
		return m.Peer(ha.State{Role: peerRole(m.Role(), e.peer), Mode: e.peer, Term: e.peerTerm}, now)
	case "client":
		return m.ClientRequest(now), nil
	}
	return m.Tick(now), nil
}

// TestMachineTable drives every row of the transition table (Machine's doc
// comment, docs/ha.md) from a machine put in that row's mode.
func TestMachineTable(t *testing.T) {
	P, B := ha.RolePrimary, ha.RoleBackup
	tests := []struct {
		name       string
		role       ha.Role
		mode       ha.Mode
		term, seen uint64 // ours, and the highest seen from the peer
		dead       bool   // the peer's expiry has passed
		ev         event
		want       ha.Mode
		wantTerm   uint64
		accepted   bool
		peerDead   bool
		err        error
	}{
		{"primary/peer primary", P, ha.ModePrimary, 3, 0, false, peer(ha.ModePrimary, 3), ha.ModePrimary, 3, false, false, ha.ErrRoleConflict},
		{"primary/peer backup", P, ha.ModePrimary, 3, 0, false, peer(ha.ModeBackup, 4), ha.ModeActive, 5, false, false, nil},
		{"primary/peer backup higher term", P, ha.ModePrimary, 3, 0, false, peer(ha.ModeBackup, 8), ha.ModeActive, 9, false, false, nil},
		{"primary/peer active", P, ha.ModePrimary, 3, 0, false, peer(ha.ModeActive, 4), ha.ModePassive, 3, false, false, nil},
		{"primary/peer passive", P, ha.ModePrimary, 3, 0, false, peer(ha.ModePassive, 4), ha.ModePrimary, 3, false, false, nil},
		{"primary/client peer alive", P, ha.ModePrimary, 3, 0, false, client, ha.ModePrimary, 3, false, false, nil},
		{"primary/client peer dead", P, ha.ModePrimary, 3, 4, true, client, ha.ModeActive, 5, true, false, nil},
		{"primary/tick peer alive", P, ha.ModePrimary, 3, 0, false, tick, ha.ModePrimary, 3, false, false, nil},
		{"primary/tick peer dead", P, ha.ModePrimary, 3, 0, true, tick, ha.ModePrimary, 3, false, true, nil},

		{"backup/peer primary", B, ha.ModeBackup, 2, 0, false, peer(ha.ModePrimary, 3), ha.ModeBackup, 2, false, false, nil},
		{"backup/peer backup", B, ha.ModeBackup, 2, 0, false, peer(ha.ModeBackup, 2), ha.ModeBackup, 2, false, false, ha.ErrRoleConflict},
		{"backup/peer active", B, ha.ModeBackup, 2, 0, false, peer(ha.ModeActive, 3), ha.ModePassive, 2, false, false, nil},
		{"backup/peer passive", B, ha.ModeBackup, 2, 0, false, peer(ha.ModePassive, 3), ha.ModeBackup, 2, false, false, nil},
		{"backup/client peer alive", B, ha.ModeBackup, 2, 0, false, client, ha.ModeBackup, 2, false, false, nil},
		{"backup/client peer dead", B, ha.ModeBackup, 2, 0, true, client, ha.ModeBackup, 2, false, false, nil},
		{"backup/tick peer alive", B, ha.ModeBackup, 2, 0, false, tick, ha.ModeBackup, 2, false, false, nil},
		{"backup/tick peer dead", B, ha.ModeBackup, 2, 0, true, tick, ha.ModeBackup, 2, false, true, nil},

		{"active/peer primary", B, ha.ModeActive, 4, 3, false, peer(ha.ModePrimary, 3), ha.ModeActive, 4, false, false, nil},
		{"active/peer backup", P, ha.ModeActive, 5, 4, false, peer(ha.ModeBackup, 4), ha.ModeActive, 5, false, false, nil},
		{"active/peer active lower term", P, ha.ModeActive, 5, 4, false, peer(ha.ModeActive, 4), ha.ModeActive, 5, false, false, nil},
		{"active/peer active higher term", P, ha.ModeActive, 5, 4, false, peer(ha.ModeActive, 6), ha.ModePassive, 5, false, false, nil},
		{"active/peer active equal term we primary", P, ha.ModeActive, 5, 4, false, peer(ha.ModeActive, 5), ha.ModeActive, 5, false, false, nil},
		{"active/peer active equal term we backup", B, ha.ModeActive, 5, 4, false, peer(ha.ModeActive, 5), ha.ModePassive, 5, false, false, nil},
		{"active/peer passive", P, ha.ModeActive, 5, 4, false, peer(ha.ModePassive, 4), ha.ModeActive, 5, false, false, nil},
		{"active/peer passive higher term: re-term above it", P, ha.ModeActive, 5, 4, false, peer(ha.ModePassive, 8), ha.ModeActive, 9, false, false, nil},
		{"active/peer starting higher term: re-term above it", B, ha.ModeActive, 4, 4, false, peer(ha.ModePrimary, 7), ha.ModeActive, 8, false, false, nil},
		{"active/client peer alive", P, ha.ModeActive, 5, 4, false, client, ha.ModeActive, 5, true, false, nil},
		{"active/client peer dead", P, ha.ModeActive, 5, 4, true, client, ha.ModeActive, 5, true, false, nil},
		{"active/tick peer alive", P, ha.ModeActive, 5, 4, false, tick, ha.ModeActive, 5, false, false, nil},
		{"active/tick peer dead", P, ha.ModeActive, 5, 4, true, tick, ha.ModeActive, 5, false, true, nil},

		{"passive/peer primary", B, ha.ModePassive, 2, 3, false, peer(ha.ModePrimary, 3), ha.ModeActive, 4, false, false, nil},
		{"passive/peer backup", P, ha.ModePassive, 3, 4, false, peer(ha.ModeBackup, 6), ha.ModeActive, 7, false, false, nil},
		{"passive/peer active", B, ha.ModePassive, 2, 3, false, peer(ha.ModeActive, 5), ha.ModePassive, 2, false, false, nil},
		{"passive/peer passive", B, ha.ModePassive, 2, 3, false, peer(ha.ModePassive, 3), ha.ModePassive, 2, false, false, ha.ErrDualPassive},
		{"passive/client peer alive", B, ha.ModePassive, 2, 3, false, client, ha.ModePassive, 2, false, false, nil},
		{"passive/client peer dead", B, ha.ModePassive, 2, 3, true, client, ha.ModeActive, 4, true, false, nil},
		{"passive/client peer dead primary", P, ha.ModePassive, 3, 6, true, client, ha.ModeActive, 7, true, false, nil},
		{"passive/client peer dead term skips to backup parity", B, ha.ModePassive, 4, 3, true, client, ha.ModeActive, 6, true, false, nil},
		{"passive/peer backup term skips to primary parity", P, ha.ModePassive, 1, 1, false, peer(ha.ModeBackup, 0), ha.ModeActive, 3, false, false, nil},
		{"passive/tick peer alive", B, ha.ModePassive, 2, 3, false, tick, ha.ModePassive, 2, false, false, nil},
		{"passive/tick peer dead", B, ha.ModePassive, 2, 3, true, tick, ha.ModePassive, 2, false, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expiry := t0.Add(hb) // alive at t0
			if tt.dead {
				expiry = t0 // dead at t0: at or after the expiry
			}
			m := ha.MachineForTest(tt.role, tt.mode, tt.term, tt.seen, hb, expiry)
			in := fmt.Sprintf("%v %v term %d (peer %d, dead %v): %v", tt.role, tt.mode, tt.term, tt.seen, tt.dead, tt.ev)
			r, err := apply(m, tt.ev, t0)
			want := ha.Result{From: tt.mode, Mode: tt.want, Term: tt.wantTerm, Accepted: tt.accepted, PeerDead: tt.peerDead}
			if r != want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Errorf("apply(%q) = %v, %v, want %v, %v", in, r, err, want, tt.err)
			}
			if m.Mode() != tt.want || m.Term() != tt.wantTerm {
				t.Errorf("after apply(%q): Mode, Term = %v, %d, want %v, %d", in, m.Mode(), m.Term(), tt.want, tt.wantTerm)
			}
			if m.Mode() == ha.ModeActive && tt.mode != ha.ModeActive && m.Term()%2 != map[ha.Role]uint64{ha.RolePrimary: 1, ha.RoleBackup: 0}[tt.role] {
				t.Errorf("after apply(%q): term %d has the wrong parity for a %v", in, m.Term(), tt.role)
			}
			// A state from the peer restarts its expiry (unless refused as fatal).
			if tt.ev.kind == "peer" && err == nil {
				if !m.PeerAlive(t0.Add(2*hb-1)) || m.PeerAlive(t0.Add(2*hb)) {
					t.Errorf("after apply(%q): PeerAlive(now+2hb-1ns), PeerAlive(now+2hb) = %v, %v, want true, false", in, m.PeerAlive(t0.Add(2*hb-1)), m.PeerAlive(t0.Add(2*hb)))
				}
			}
		})
	}
}

func TestMachineTickReportsDeathOnce(t *testing.T) {
	m, err := ha.NewMachine(ha.RoleBackup, 0, hb, t0)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, false, true, false, false} {
		if r := m.Tick(t0.Add(time.Duration(i) * hb)); r.PeerDead != want {
			t.Errorf("Tick(start+%d beats).PeerDead = %v, want %v", i, r.PeerDead, want)
		}
	}
	if _, err := m.Peer(ha.State{Role: ha.RolePrimary, Mode: ha.ModeActive, Term: 1}, t0.Add(5*hb)); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, false, true, false} {
		if r := m.Tick(t0.Add(time.Duration(5+i) * hb)); r.PeerDead != want {
			t.Errorf("Tick(peer heard+%d beats).PeerDead = %v, want %v", i, r.PeerDead, want)
		}
	}
}

func TestNewMachineRejects(t *testing.T) {
	tests := []struct {
		role ha.Role
		hb   time.Duration
	}{{0, hb}, {3, hb}, {ha.RolePrimary, 0}, {ha.RoleBackup, -time.Second}}
	for _, tt := range tests {
		if m, err := ha.NewMachine(tt.role, 0, tt.hb, t0); err == nil {
			t.Errorf("NewMachine(%v, 0, %v) = %v, nil, want an error", tt.role, tt.hb, m)
		}
	}
}

func TestPeerRefusesBadState(t *testing.T) {
	tests := []ha.State{
		{Role: 0, Mode: ha.ModeActive},
		{Role: ha.RoleBackup, Mode: 9},
		{Role: ha.RoleBackup, Mode: ha.ModePrimary},
	}
	for _, s := range tests {
		m, _ := ha.NewMachine(ha.RolePrimary, 0, hb, t0)
		if r, err := m.Peer(s, t0); !errors.Is(err, ha.ErrNotState) || r.Changed() {
			t.Errorf("Peer(%+v) = %v, %v, want no change, ErrNotState", s, r, err)
		}
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		in   fmt.Stringer
		want string
	}{
		{ha.RolePrimary, "primary"}, {ha.RoleBackup, "backup"}, {ha.Role(7), "Role(7)"},
		{ha.ModePrimary, "primary"}, {ha.ModeBackup, "backup"}, {ha.ModeActive, "active"}, {ha.ModePassive, "passive"}, {ha.Mode(0), "Mode(0)"},
		{ha.Result{From: ha.ModePassive, Mode: ha.ModeActive, Term: 4, Accepted: true}, "passive -> active term 4 accepted"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("String(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// pair is two gateways' machines on one simulated clock. Each round is one
// heartbeat: both tick, then, over the links that are up, each gets the
// state the other published at the start of the round.
type pair struct {
	t        *testing.T
	now      time.Time
	p, b     *ha.Machine
	pUp, bUp bool // the gateway is running (beats and receives)
	link     bool // the HA link carries states
}

func newPair(t *testing.T) *pair {
	t.Helper()
	x := &pair{t: t, now: t0, pUp: true, bUp: true, link: true}
	x.p = x.start(ha.RolePrimary, 0)
	x.b = x.start(ha.RoleBackup, 0)
	return x
}

func (x *pair) start(role ha.Role, term uint64) *ha.Machine {
	x.t.Helper()
	m, err := ha.NewMachine(role, term, hb, x.now)
	if err != nil {
		x.t.Fatal(err)
	}
	return m
}

func (x *pair) round() {
	x.t.Helper()
	x.now = x.now.Add(hb)
	ps, bs := x.p.State(1, x.now), x.b.State(2, x.now)
	if x.pUp {
		x.p.Tick(x.now)
	}
	if x.bUp {
		x.b.Tick(x.now)
	}
	if !x.link {
		return
	}
	if x.pUp && x.bUp {
		if _, err := x.b.Peer(ps, x.now); err != nil {
			x.t.Fatalf("backup.Peer(%+v) = %v", ps, err)
		}
		if _, err := x.p.Peer(bs, x.now); err != nil {
			x.t.Fatalf("primary.Peer(%+v) = %v", bs, err)
		}
	}
}

func (x *pair) rounds(n int) {
	x.t.Helper()
	for range n {
		x.round()
	}
}

func (x *pair) want(p, b ha.Mode) {
	x.t.Helper()
	if x.p.Mode() != p || x.b.Mode() != b {
		x.t.Fatalf("primary, backup = %v (term %d), %v (term %d), want %v, %v", x.p.Mode(), x.p.Term(), x.b.Mode(), x.b.Term(), p, b)
	}
}

func TestScenarioStart(t *testing.T) {
	x := newPair(t)
	x.want(ha.ModePrimary, ha.ModeBackup)
	x.round() // the primary sees the starting backup, the backup a starting primary
	x.want(ha.ModeActive, ha.ModeBackup)
	x.round()
	x.want(ha.ModeActive, ha.ModePassive)
	if x.p.Term() != 1 || x.b.Term() != 0 {
		t.Errorf("terms = %d, %d, want 1, 0", x.p.Term(), x.b.Term())
	}
	if r := x.b.ClientRequest(x.now); r.Accepted || r.Changed() {
		t.Errorf("backup.ClientRequest with the primary alive = %v, want refused", r)
	}
	if r := x.p.ClientRequest(x.now); !r.Accepted {
		t.Errorf("primary.ClientRequest = %v, want accepted", r)
	}
}

func TestScenarioPrimaryDiesBackupTakesOverOnVote(t *testing.T) {
	x := newPair(t)
	x.rounds(2)
	x.pUp = false // the primary dies
	x.round()
	if r := x.b.ClientRequest(x.now); r.Accepted {
		t.Fatalf("backup.ClientRequest one beat after the primary died = %v, want refused (peer not yet dead)", r)
	}
	x.rounds(10) // long dead, but nobody asks
	x.want(ha.ModeActive, ha.ModePassive)
	r := x.b.ClientRequest(x.now)
	if !r.Accepted || r.Mode != ha.ModeActive || r.Term != 2 {
		t.Fatalf("backup.ClientRequest with the primary dead = %v, want passive -> active term 2 accepted", r)
	}
}

func TestScenarioLinkCutNoVoteNoTakeover(t *testing.T) {
	x := newPair(t)
	x.rounds(2)
	x.link = false
	x.rounds(10)
	x.want(ha.ModeActive, ha.ModePassive)
	if x.b.PeerAlive(x.now) {
		t.Errorf("backup.PeerAlive after 10 beats without states = true, want false")
	}
	// Clients keep going to the active, which serves them; no takeover.
	if r := x.p.ClientRequest(x.now); !r.Accepted || r.Changed() {
		t.Errorf("primary.ClientRequest = %v, want accepted, no change", r)
	}
	x.link = true
	x.round()
	x.want(ha.ModeActive, ha.ModePassive)
}

func TestScenarioRestartingPrimaryComesUpPassive(t *testing.T) {
	x := newPair(t)
	x.rounds(2)
	x.pUp = false
	x.rounds(3)
	if r := x.b.ClientRequest(x.now); !r.Accepted {
		t.Fatalf("backup.ClientRequest = %v, want accepted", r)
	}
	// The primary restarts with the term it persisted.
	x.p, x.pUp = x.start(ha.RolePrimary, x.p.Term()), true
	if r := x.p.ClientRequest(x.now); r.Accepted {
		t.Errorf("restarted primary.ClientRequest before hearing the peer = %v, want refused", r)
	}
	x.round()
	x.want(ha.ModePassive, ha.ModeActive)
	x.rounds(5) // failback is manual: nothing moves
	x.want(ha.ModePassive, ha.ModeActive)
	if r := x.p.ClientRequest(x.now); r.Accepted {
		t.Errorf("passive primary.ClientRequest = %v, want refused", r)
	}
	// Manual failback: stop the backup; a client then votes the primary in.
	x.bUp = false
	x.rounds(2)
	r := x.p.ClientRequest(x.now)
	if !r.Accepted || r.Term != 3 {
		t.Errorf("primary.ClientRequest with the backup stopped = %v, want passive -> active term 3 accepted", r)
	}
}

func TestScenarioHealAfterSplitLowerTermYields(t *testing.T) {
	x := newPair(t)
	x.rounds(2)
	x.link = false
	x.rounds(2)
	// A client that cannot reach the primary votes the backup in: two actives.
	if r := x.b.ClientRequest(x.now); !r.Accepted {
		t.Fatalf("backup.ClientRequest = %v, want accepted", r)
	}
	x.want(ha.ModeActive, ha.ModeActive)
	if x.p.Term() == x.b.Term() {
		t.Fatalf("two actives with term %d each", x.p.Term())
	}
	x.link = true
	x.round() // one heartbeat after the heal
	x.want(ha.ModePassive, ha.ModeActive)
	x.rounds(3)
	x.want(ha.ModePassive, ha.ModeActive)
}

// TestScenarioRestartBehindCutLinkTakesOwnTerm: with max(own, peer)+1 both
// gateways would take term 2 here (the backup after seeing 1, the primary
// restarted with 1 and never hearing the backup's 2), so (term, seq) would
// repeat. The parity rule gives them 2 and 3.
func TestScenarioRestartBehindCutLinkTakesOwnTerm(t *testing.T) {
	x := newPair(t)
	x.rounds(2)
	x.link = false
	x.rounds(2)
	if r := x.b.ClientRequest(x.now); r.Term != 2 {
		t.Fatalf("backup.ClientRequest = %v, want term 2", r)
	}
	x.p = x.start(ha.RolePrimary, x.p.Term()) // crashes and restarts, link still cut
	x.rounds(2)
	if r := x.p.ClientRequest(x.now); !r.Accepted || r.Term != 3 {
		t.Fatalf("restarted primary.ClientRequest = %v, want accepted term 3", r)
	}
	x.link = true
	x.round()
	x.want(ha.ModeActive, ha.ModePassive)
}

func TestScenarioEqualTermsBackupYields(t *testing.T) {
	// Only a lost persisted term gets here; the outcome is still one active.
	x := newPair(t)
	x.p = ha.MachineForTest(ha.RolePrimary, ha.ModeActive, 7, 0, hb, x.now)
	x.b = ha.MachineForTest(ha.RoleBackup, ha.ModeActive, 7, 0, hb, x.now)
	x.round()
	x.want(ha.ModeActive, ha.ModePassive)
}

func TestScenarioBothPrimaryIsFatal(t *testing.T) {
	a, _ := ha.NewMachine(ha.RolePrimary, 0, hb, t0)
	b, _ := ha.NewMachine(ha.RolePrimary, 0, hb, t0)
	if _, err := a.Peer(b.State(1, t0), t0); !errors.Is(err, ha.ErrRoleConflict) {
		t.Errorf("primary.Peer(primary's state) error = %v, want ErrRoleConflict", err)
	}
}
