package gateway_test

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/mdgate/mdgate/internal/promscrape"
	"github.com/mdgate/mdgate/lvc"
)

var metricName = regexp.MustCompile(`mdgate_[a-z_]+`)

// queries collects every PromQL string of a dashboard: panel targets'
// "expr" and template variables' "query"/"definition".
func queries(v any, key string, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			if s, ok := c.(string); ok && (k == "expr" || (key == "templating" && (k == "query" || k == "definition"))) {
				*out = append(*out, s)
				continue
			}
			next := key
			if k == "templating" {
				next = k
			}
			queries(c, next, out)
		}
	case []any:
		for _, c := range v {
			queries(c, key, out)
		}
	}
}

// Every mdgate_ metric docs/grafana-dashboard.json queries is exported by a
// live gateway (demo feed, cache, history and snapshots on, one WebSocket client),
// histogram series (_bucket, _sum, _count) by their histogram.
func TestGrafanaDashboardQueriesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	if dash["uid"] == "" || dash["title"] == "" {
		t.Errorf("dashboard uid %q, title %q: want both", dash["uid"], dash["title"])
	}
	ids := map[float64]bool{}
	for _, p := range dash["panels"].([]any) {
		p := p.(map[string]any)
		id, _ := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel %q: id %v used twice", p["title"], id)
		}
		ids[id] = true
		if p["type"] != "row" && len(p["targets"].([]any)) == 0 {
			t.Errorf("panel %q has no targets", p["title"])
		}
	}
	var exprs []string
	queries(dash, "", &exprs)
	names := map[string][]string{} // metric name -> the expressions using it
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			names[n] = append(names[n], e)
		}
	}
	if len(exprs) < 20 || len(names) < 15 {
		t.Fatalf("%d expressions naming %d metrics: the dashboard lost its panels?", len(exprs), len(names))
	}

	c := testConfig()
	c.Demo = true
	c.DemoRate = 1000
	c.Cache.History = []lvc.HistoryRule{{Prefix: "md.", MaxCount: 100, MaxBytes: 1 << 20}} // mdgate_history_window_seconds{prefix}
	g := start(t, c)
	drainingClient(t, g.HTTPAddr(), "md.")
	fams, err := promscrape.Scrape(context.Background(), "http://"+g.HTTPAddr()+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		if fams[n] != nil {
			continue
		}
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if s, ok := strings.CutSuffix(n, suffix); ok {
				base = s
				break
			}
		}
		if f := fams[base]; base != n && f != nil && slices.Contains([]dto.MetricType{dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY}, f.GetType()) {
			continue
		}
		t.Errorf("the dashboard queries %s, which /metrics does not export (in %q)", n, names[n][0])
	}
}
