package bridge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/internal/clock"
	"github.com/mdgate/mdgate/internal/clock/clocktest"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func hsToken(t *testing.T, topics []string, exp time.Time) string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Topics: topics,
		RegisteredClaims: jwt.RegisteredClaims{Subject: "desk-1", ExpiresAt: jwt.NewNumericDate(exp)}}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func wsURL(r *rig) string { return "ws" + strings.TrimPrefix(r.srv.URL, "http") + "/ws" }

func TestAuthRefusesMissingAndBadTokens(t *testing.T) {
	auth, err := NewHMACAuth(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, wsConfig(func(c *Config) { c.Auth = auth }), blackbox.DefaultConfig())
	expired := hsToken(t, []string{""}, time.Now().Add(-time.Minute))
	other, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Topics: []string{""},
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}).SignedString([]byte("another secret, also 32 bytes long!"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, Claims{Topics: []string{""}}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for name, hdr := range map[string]http.Header{
		"no token":        {},
		"expired":         {"Authorization": {"Bearer " + expired}},
		"wrong secret":    {"Authorization": {"Bearer " + other}},
		"alg none":        {"Authorization": {"Bearer " + none}},
		"not a JWT":       {"Authorization": {"Bearer hello"}},
		"no expiry claim": {"Authorization": {"Bearer " + noExp(t)}},
	} {
		_, resp, err := websocket.DefaultDialer.Dial(wsURL(r), hdr)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: err %v, status %v, want 401", name, err, resp)
		}
	}
	if got := r.metric(t, "mdgate_ws_rejected_total", "reason", "auth"); got != 6 {
		t.Errorf("rejected{reason=auth} = %v, want 6", got)
	}
}

func noExp(t *testing.T) string {
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Topics: []string{""}}).SignedString(secret)
	return tok
}

func TestTokenLimitsTopicsAndComesThreeWays(t *testing.T) {
	auth, _ := NewHMACAuth(secret)
	r := newRig(t, wsConfig(func(c *Config) { c.Auth = auth }), blackbox.DefaultConfig())
	tok := hsToken(t, []string{"md.eq."}, time.Now().Add(time.Hour))
	u := wsURL(r)
	dialers := map[string]func() (*websocket.Conn, error){
		"subprotocol": func() (*websocket.Conn, error) {
			d := websocket.Dialer{Subprotocols: []string{"mdgate", SubprotocolPrefix + tok}}
			c, _, err := d.Dial(u, nil)
			if err == nil && c.Subprotocol() != "mdgate" {
				t.Errorf("subprotocol chosen %q, want mdgate", c.Subprotocol())
			}
			return c, err
		},
		"query": func() (*websocket.Conn, error) {
			c, _, err := websocket.DefaultDialer.Dial(u+"?access_token="+tok, nil)
			return c, err
		},
		"cookie": func() (*websocket.Conn, error) {
			c, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Cookie": {CookieName + "=" + tok}})
			return c, err
		},
	}
	for name, dial := range dialers {
		ws, err := dial()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := &client{ws: ws}
		c.send(t, `{"op":"subscribe","topics":["md.eq.AAPL"],"prefixes":["md.eq.X"],"snapshot":false}`)
		if m := c.next(t); m["op"] != "ack" {
			t.Fatalf("%s: covered subscribe got %v, want ack", name, m)
		}
		for _, req := range []string{`{"op":"subscribe","topics":["md.fx.EUR"]}`, `{"op":"subscribe","prefixes":["md."]}`} {
			c.send(t, req)
			if m := c.next(t); m["code"] != CodeForbidden.String() {
				t.Fatalf("%s: %s got %v, want error forbidden", name, req, m)
			}
		}
		ws.Close()
	}
	if got := r.metric(t, "mdgate_ws_denied_subscriptions_total"); got != 6 {
		t.Errorf("denied subscriptions = %v, want 6", got)
	}
}

// The token's expiry is the bridge's clock's: the connection stays until
// the clock reaches it, closes then with 1008, and the token is refused from
// then on (the wall clock has not reached it).
func TestTokenExpiryClosesConnection(t *testing.T) {
	auth, _ := NewHMACAuth(secret)
	clk := clock.NewFake(time.Now())
	r := newRig(t, wsConfig(func(c *Config) { c.Auth, c.Clock = auth, clk }), blackbox.DefaultConfig())
	bearer := http.Header{"Authorization": {"Bearer " + hsToken(t, []string{""}, clk.Now().Add(time.Hour))}}
	c := r.dial(t, bearer)
	clocktest.BlockUntil(t, clk, 1) // the expiry's timer
	clk.Advance(59 * time.Minute)
	c.send(t, `{"op":"ping","id":1}`)
	if m := c.next(t); m["op"] != "pong" {
		t.Fatalf("a minute before the token expires: %v, want pong", m["\x00raw"])
	}
	clk.Advance(time.Minute)
	for {
		_, err := c.read(wait)
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) || !strings.Contains(err.Error(), "token expired") {
			t.Fatalf("connection ended with %v, want 1008 token expired", err)
		}
		break
	}
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(r), bearer)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Dial with the expired token = %v (%v), want 401", err, resp)
	}
}

func TestES256PublicKey(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	auth, err := NewPublicKeyAuth(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodES256, Claims{Topics: []string{"md."},
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}).SignedString(key)
	g, err := auth.Verify(tok)
	if err != nil || !g.Allows("md.eq.AAPL") || g.Allows("other") {
		t.Fatalf("Verify(ES256) = %+v, %v", g, err)
	}
	// An HS256 token signed with the public key bytes (algorithm confusion) is refused.
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Topics: []string{""},
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}).SignedString(der)
	if _, err := auth.Verify(hs); err == nil {
		t.Fatal("an HS256 token was accepted by an ES256 verifier")
	}
	if _, err := NewHMACAuth([]byte("short")); err == nil {
		t.Fatal("a 5-byte HMAC secret was accepted")
	}
}

func TestConnectionLimits(t *testing.T) {
	r := newRig(t, wsConfig(func(c *Config) { c.MaxConns, c.MaxConnsPerIP = 3, 2 }), blackbox.DefaultConfig())
	r.dial(t, nil)
	r.dial(t, nil)
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(r), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection from one address: %v %v, want 503", err, resp)
	}
	if got := r.metric(t, "mdgate_ws_rejected_total", "reason", "max_conns_per_ip"); got != 1 {
		t.Fatalf("rejected{reason=max_conns_per_ip} = %v, want 1", got)
	}
}
