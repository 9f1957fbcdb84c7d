package ha_test

import (
	"fmt"
	"time"

	"github.com/mdgate/mdgate/ha"
)

func ExampleAppend() {
	b := ha.Append(nil, ha.State{Role: ha.RoleBackup, Mode: ha.ModeActive, Term: 2, Epoch: 0x0102030405060708, Time: 1000})
	fmt.Printf("% x\n", b)
	s, _ := ha.Parse(b)
	fmt.Println(s.Role, s.Mode, s.Term)
	// Output:
	// 4d 44 48 41 01 02 03 00 00 00 00 00 00 00 00 02 01 02 03 04 05 06 07 08 00 00 00 00 00 00 03 e8
	// backup active 2
}

// A backup whose primary stops beating takes over only when a client asks
// it, and then with a new term.
func ExampleMachine() {
	const heartbeat = time.Second
	now := time.Unix(0, 0)
	backup, _ := ha.NewMachine(ha.RoleBackup, 0, heartbeat, now)
	r, _ := backup.Peer(ha.State{Role: ha.RolePrimary, Mode: ha.ModeActive, Term: 1}, now)
	fmt.Println(r)

	now = now.Add(heartbeat) // one beat missed: the primary is still alive
	fmt.Println(backup.ClientRequest(now))
	now = now.Add(heartbeat) // two: dead
	fmt.Println(backup.Tick(now))
	fmt.Println(backup.Tick(now.Add(heartbeat)))
	fmt.Println(backup.ClientRequest(now.Add(heartbeat)))
	// Output:
	// backup -> passive term 0
	// passive -> passive term 0
	// passive -> passive term 0 peer dead
	// passive -> passive term 0
	// passive -> active term 2 accepted
}
