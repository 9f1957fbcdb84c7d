//go:build integration

package testpeer

// Integration is true in a build with -tags integration (make test sets
// it): the tests against real outside peers (python3-zmq, chromium,
// nats-server) run.
const Integration = true
