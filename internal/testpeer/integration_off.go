//go:build !integration

package testpeer

// Integration is false without -tags integration: a bare `go test ./...`
// skips the tests against real outside peers (python3-zmq, chromium,
// nats-server), saying so, and stays fast. `make test` runs them.
const Integration = false
