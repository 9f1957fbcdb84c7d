// Package attackpeer holds the peers that both the proxy's isolation tests
// and the load test's attack run (loadtest -attack) put against a gateway:
// a python3-zmq XSUB that floods subscribe frames, a libzmq SUB, and an XPUB
// feed that starts once the gateway's ingress has subscribed to it. loadtest
// is a main package that tests cannot import, so what both use lives here.
package attackpeer
