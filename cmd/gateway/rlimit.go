package main

import (
	"syscall"

	"github.com/rs/zerolog"
)

// raiseFDLimit logs the soft and hard RLIMIT_NOFILE, raising the soft one
// first if Go has not. Go (1.19 on) raises it in package syscall's init on
// Unix (Go 1.26: to the hard limit minus one, its way of noticing a later
// prlimit from outside) and puts the original back for child processes. Checked with Go 1.26 under prlimit --nofile=256:1024: the
// gateway starts with 1023. This only acts when that did not happen (a
// platform or Go version that does not), since calling Setrlimit also stops
// Go restoring the limit for children.
func raiseFDLimit(log zerolog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn().Err(err).Msg("cannot read the open-file limit")
		return
	}
	raised := false
	if lim.Max > 0 && lim.Cur < lim.Max-1 {
		want := lim
		want.Cur = want.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			log.Warn().Err(err).Uint64("soft", lim.Cur).Uint64("hard", lim.Max).Msg("cannot raise the open-file limit to its hard limit")
		} else {
			lim, raised = want, true
		}
	}
	log.Info().Uint64("soft", lim.Cur).Uint64("hard", lim.Max).Bool("raised_here", raised).
		Msg("open-file limit (every ZeroMQ and HTTP connection holds a descriptor; a listener out of them sheds new connections, docs/operations.md)")
}
