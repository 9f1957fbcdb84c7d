// Package gateway assembles mdgate's stages and runs them as one errgroup:
// the proxy loop (package proxy), the fan-out engine (blackbox), the
// last-value cache and its file (lvc), the snapshot server (snapshot), the
// demo feed, and one HTTP server for the dashboard, /ws (bridge), /ops and
// /api/ops, /healthz, /metrics and, when asked, /debug/pprof.
//
// The first failure or a cancelled context stops every stage within
// Config.ShutdownTimeout; WebSocket connections, hijacked out of the HTTP
// server's sight, are closed by the bridge within the same bound. Ready is
// closed once every socket is bound and HTTP listens; the first line logged
// then says where to point a browser and a ZeroMQ subscriber. Open HTTP
// connections are counted and capped (httplimit.go).
package gateway
