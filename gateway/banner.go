package gateway

import (
	"net"
	"strings"

	"github.com/mdgate/mdgate/proxy"
)

// banner is the first line logged once the gateway is ready: where to point
// a browser and a ZeroMQ subscriber, with the bound endpoints (ports chosen
// by the system included) and wildcard hosts shown as localhost, e.g.
//
//	open http://localhost:8080/ (dashboard), /ops; ZeroMQ: SUB tcp://localhost:5557 (raw), tcp://localhost:5559 (stamped); snapshots tcp://localhost:5558
func banner(httpAddr string, tls bool, ep proxy.Endpoints, snapshot string) string {
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	var b strings.Builder
	b.WriteString("open " + scheme + localHost(httpAddr) + "/ (dashboard), /ops; ZeroMQ: SUB ")
	var subs []string
	for _, e := range ep.Egress {
		subs = append(subs, localEndpoint(e)+" (raw)")
	}
	for _, e := range ep.Stamped {
		subs = append(subs, localEndpoint(e)+" (stamped)")
	}
	if len(subs) == 0 {
		subs = append(subs, "none bound")
	}
	b.WriteString(strings.Join(subs, ", "))
	if snapshot != "" {
		b.WriteString("; snapshots " + localEndpoint(snapshot))
	}
	return b.String()
}

// localEndpoint rewrites a tcp:// endpoint bound on a wildcard host
// (tcp://0.0.0.0:5557, tcp://[::]:5557) to tcp://localhost:5557; any other
// endpoint is returned as it is.
func localEndpoint(e string) string {
	const tcp = "tcp://"
	if !strings.HasPrefix(e, tcp) {
		return e
	}
	return tcp + localHost(e[len(tcp):])
}

// localHost rewrites host:port to localhost:port when host is empty or a
// wildcard ("*", 0.0.0.0, ::).
func localHost(hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	if host == "" || host == "*" {
		return net.JoinHostPort("localhost", port)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return net.JoinHostPort("localhost", port)
	}
	return hostport
}
