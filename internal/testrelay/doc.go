// Package testrelay is a TCP relay for tests that cut one network link and
// leave the others alone: it forwards every connection it accepts to a
// target until it is cut, then drops the connections it carries (both
// sides, as a network failure would) and refuses new ones until it is
// healed. The failover tests of cmd/gateway put it in the HA state link; the
// browser tests of web put it between a page and its gateway.
package testrelay
