// Package attackpeer holds the peers that the isolation tests (proxy,
// snapshot) and the load test's attacks (loadtest -scenario attacks) put
// against a gateway: a python3-zmq XSUB that floods subscribe frames,
// DEALERs that flood the snapshot server with requests they never read, a
// libzmq SUB, and an XPUB feed that starts once the gateway's ingress has
// subscribed to it. loadtest is a main package that tests cannot import, so
// what both use lives here.
package attackpeer
