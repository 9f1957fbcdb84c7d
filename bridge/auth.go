package bridge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Auth verifies the bearer tokens (JWT) WebSocket clients present. A token
// signed with the configured HS256 secret, or with the private key of the
// configured RS256/ES256 public key, carries the topic prefixes its holder
// may subscribe to in a "topics" claim, and an expiry ("exp") at which the
// connection is closed.
type Auth struct {
	key     any
	methods []string
}

// Claims are the token's claims the gateway reads.
type Claims struct {
	Topics []string `json:"topics"` // prefixes the holder may subscribe to; "" allows everything
	Ops    bool     `json:"ops"`    // the holder may read the operations view (/api/ops)
	jwt.RegisteredClaims
}

// NewHMACAuth verifies HS256 tokens signed with secret (at least 32 bytes).
func NewHMACAuth(secret []byte) (*Auth, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("JWT secret of %d bytes: want at least 32", len(secret))
	}
	return &Auth{key: secret, methods: []string{"HS256"}}, nil
}

// NewPublicKeyAuth verifies RS256 or ES256 tokens against a PEM public key.
func NewPublicKeyAuth(pemBytes []byte) (*Auth, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("JWT public key: no PEM block")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("JWT public key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		return &Auth{key: k, methods: []string{"RS256"}}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("JWT public key: ECDSA keys must be P-256 (ES256)")
		}
		return &Auth{key: k, methods: []string{"ES256"}}, nil
	}
	return nil, fmt.Errorf("JWT public key: %T: want RSA (RS256) or ECDSA P-256 (ES256)", key)
}

// Grant is what a verified token allows.
type Grant struct {
	Subject  string
	Prefixes []string
	Ops      bool      // may read the operations view
	Expires  time.Time // zero: the token does not expire
}

// Verify checks the token's signature, algorithm and expiry.
func (a *Auth) Verify(token string) (*Grant, error) { return a.verify(token, time.Now) }

// verify is Verify with expiry judged at now(): the bridge's clock, which
// also times the connection's close when the token expires.
func (a *Auth) verify(token string, now func() time.Time) (*Grant, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.key, nil },
		jwt.WithValidMethods(a.methods), jwt.WithExpirationRequired(), jwt.WithTimeFunc(now))
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	g := &Grant{Subject: c.Subject, Prefixes: c.Topics, Ops: c.Ops}
	if c.ExpiresAt != nil {
		g.Expires = c.ExpiresAt.Time
	}
	return g, nil
}

// Allows says whether the grant covers a subscription: an exact topic under
// one of its prefixes, or a prefix that is itself under one (a wider prefix
// would reach topics the grant does not cover).
func (g *Grant) Allows(key string) bool {
	if g == nil {
		return true // no auth configured
	}
	for _, p := range g.Prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// SubprotocolPrefix marks a token offered as a WebSocket subprotocol:
// browsers cannot set headers, so they offer ["mdgate", "bearer." + token].
const SubprotocolPrefix = "bearer."

// CookieName is the cookie a token may come in.
const CookieName = "mdgate_token"

// TokenFrom is the token a request carries, found as on /ws (the
// operations endpoint uses the same rule).
func TokenFrom(r *http.Request) string { return tokenFrom(r) }

// tokenFrom finds a token in the Sec-WebSocket-Protocol header, the
// Authorization header, the access_token query parameter or the cookie.
func tokenFrom(r *http.Request) string {
	for _, p := range websocketProtocols(r) {
		if t, ok := strings.CutPrefix(p, SubprotocolPrefix); ok {
			return t
		}
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return t
	}
	if t := r.URL.Query().Get("access_token"); t != "" {
		return t
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value
	}
	return ""
}

func websocketProtocols(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
