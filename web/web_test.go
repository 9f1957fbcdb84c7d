package web

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandlerServesEmbeddedDashboard(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/", `<script type="module" src="app.js">`},
		{"/app.js", `from "./mdgate.js"`},
		{"/style.css", `#viewport`},
	} {
		rec := httptest.NewRecorder()
		Handler().ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != 200 || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s = %d, body without %q", tc.path, rec.Code, tc.want)
		}
	}
}
