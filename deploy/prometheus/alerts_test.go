package alerts_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/proxy"
	"github.com/sseguard/sseguard/server"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// exported returns the metric family names the binary exports, as its
// /metrics handlers write them.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	h := hub.New(hub.Options{Store: memory.New(store.Retention{})})
	srv := server.New(config.Default(), h, nil, slog.New(slog.DiscardHandler))
	// Counters with labels exist once they count something: answer one
	// refusal first.
	req := httptest.NewRequest("GET", "/events?topic=demo", nil)
	req.Header.Set("Accept", "*/*")
	srv.ServeHTTP(httptest.NewRecorder(), req)
	names := map[string]bool{}
	for _, n := range typeNames(t, srv.MetricsHandler()) {
		names[n] = true
	}
	for _, n := range proxyMetrics(t) {
		names[n] = true
	}
	return names
}

// typeNames returns the metric family names that the exposition served by
// metrics declares with "# TYPE" lines.
func typeNames(t *testing.T, metrics http.Handler) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	metrics.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var names []string
	for line := range strings.Lines(rec.Body.String()) {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names = append(names, strings.Fields(rest)[0])
		}
	}
	if len(names) == 0 {
		t.Fatalf("no metrics in the exposition (status %d)", rec.Code)
	}
	return names
}

// proxyMetrics returns the metric names sseguard proxy exports, after one
// response with drift (an upstream stream without Cache-Control).
func proxyMetrics(t *testing.T) []string {
	t.Helper()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: x\n\n")
	}))
	defer upstream.Close()
	cfg, err := proxy.ParseConfig([]byte("upstream: " + upstream.URL + "\nroutes:\n  - prefix: /\n    kind: stream\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	req := httptest.NewRequest("GET", "/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	p.ServeHTTP(httptest.NewRecorder(), req)
	return typeNames(t, p.Metrics())
}

func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.Parse(raw, false, model.UTF8Validation, p, nil)
	if len(errs) > 0 {
		t.Fatalf("alerts.yml: %v", errs)
	}
	names := exported(t)
	seen := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			expr, err := p.ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
				continue
			}
			if r.Alert == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %q lacks a name, severity or summary", r.Alert)
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				name := vs.Name
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(name, suffix); ok && names[base] {
						name = base
					}
				}
				if !names[name] {
					t.Errorf("%s names %s, which sseguard does not export", r.Alert, vs.Name)
				}
				seen++
				return nil
			})
		}
	}
	if seen < 6 {
		t.Fatalf("only %d metric selectors checked: the rules file is not what the test expects", seen)
	}
}
