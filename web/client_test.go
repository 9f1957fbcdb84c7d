package web

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandlerServesClientModule: /mdgate.js is served as JavaScript (a
// browser refuses a module script of any other type).
func TestHandlerServesClientModule(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/mdgate.js", nil))
	if ct := rec.Header().Get("Content-Type"); rec.Code != 200 || !strings.HasPrefix(ct, "text/javascript") {
		t.Fatalf("GET /mdgate.js = %d %q, want 200 text/javascript", rec.Code, ct)
	}
	if !strings.Contains(rec.Body.String(), "export class MdGate") {
		t.Fatal("GET /mdgate.js: no MdGate export")
	}
}
