// Package testpeer runs real libzmq peers for tests: small Python programs on
// Debian's python3-zmq, started as child processes that talk to the gateway
// over real tcp. Each peer reads a JSON spec from its argument and writes one
// JSON line per event to stdout. Serve runs the gateway's own stages (a
// gateway, a proxy, a snapshot server) the same way: until the test ends.
package testpeer
