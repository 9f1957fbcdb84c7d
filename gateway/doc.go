// Package gateway assembles mdgate's stages (the libzmq proxy loop, the demo
// feed and the operations HTTP server) and runs them as one errgroup, so that
// the first failure or a cancelled context stops them all within a bound.
package gateway
