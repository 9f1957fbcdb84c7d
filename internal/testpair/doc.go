// Package testpair runs gateways as processes for the failover tests of
// several packages (cmd/gateway, clients/python, slowsub/slowsubzmq): it
// builds cmd/gateway, starts a primary and a backup on free loopback ports
// as a Binary Star pair (docs/ha.md), reads their mode from /healthz, and
// feeds both with one publisher. A gateway killed with SIGKILL must be a
// process of its own, so these tests cannot run the gateway in process.
package testpair
