package proxy

import "github.com/prometheus/client_golang/prometheus/testutil"

func (p *Proxy) ingressCount() float64 { return testutil.ToFloat64(p.m.ingressMsgs) }
