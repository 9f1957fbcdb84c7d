// Package testgw runs a gateway in process for the tests of the packages
// around it (web, clients/python, gateway's own external tests): Config is a
// configuration on loopback ports, Start runs it until the test ends, or
// until its stop is called by a test that restarts a gateway on the same
// port. Tests that must kill a gateway run it as a process instead
// (internal/testpair).
package testgw
