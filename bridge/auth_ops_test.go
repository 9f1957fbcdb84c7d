package bridge

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The ops claim reaches the grant; a token without it does not grant it.
func TestVerifyReadsOpsClaim(t *testing.T) {
	auth, err := NewHMACAuth(secret)
	if err != nil {
		t.Fatal(err)
	}
	exp := jwt.NewNumericDate(time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name string
		c    Claims
		want bool
	}{
		{"ops true", Claims{Ops: true, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp}}, true},
		{"ops false", Claims{Ops: false, Topics: []string{""}, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp}}, false},
		{"ops absent", Claims{Topics: []string{"md."}, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, tc.c).SignedString(secret)
			if err != nil {
				t.Fatal(err)
			}
			g, err := auth.Verify(tok)
			if err != nil {
				t.Fatalf("Verify(%q): %v", tok, err)
			}
			if g.Ops != tc.want {
				t.Errorf("Verify(%q).Ops = %v, want %v", tok, g.Ops, tc.want)
			}
		})
	}
}

func TestTokenFromHeaderQueryCookie(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(r *http.Request)
	}{
		{"header", func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok") }},
		{"query", func(r *http.Request) { r.URL.RawQuery = "access_token=tok" }},
		{"cookie", func(r *http.Request) { r.Header.Set("Cookie", CookieName+"=tok") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/ops", nil)
			tc.set(r)
			if got := TokenFrom(r); got != "tok" {
				t.Errorf("TokenFrom(%s) = %q, want %q", tc.name, got, "tok")
			}
		})
	}
}
