// Package testpeer runs real libzmq peers for tests: small Python programs on
// Debian's python3-zmq, started as child processes that talk to the gateway
// over real tcp. Each peer reads a JSON spec from its argument and writes one
// JSON line per event to stdout.
package testpeer
