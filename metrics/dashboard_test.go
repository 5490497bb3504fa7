package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/metrics"
)

// The Grafana dashboard of contrib/ charts only series that exist.
func TestDashboardSeriesExist(t *testing.T) {
	data, err := os.ReadFile("../contrib/grafana/starling.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	m := metrics.New()
	m.C2S(func() c2s.Stats {
		return c2s.Stats{
			Logins: map[string]uint64{"PLAIN": 1}, LoginFailures: map[string]uint64{"throttled": 1},
			StanzasIn: map[string]uint64{"iq": 1}, StanzasOut: map[string]uint64{"iq": 1},
			StreamCloses: map[string]uint64{"client-closed": 1}, QueueOverflows: map[string]uint64{"queue-items": 0},
			QueueLengths: c2s.Histogram{Bounds: []float64{1}, Counts: []uint64{1, 0}, Sum: 1, Count: 1},
			Sessions:     []c2s.SessionCount{{Transport: "tcp", State: "active", N: 1}},
		}
	})
	m.S2S(func() map[[2]string]int { return map[[2]string]int{{"out", "up"}: 0} })
	m.Store(nil) // its histograms, without a backend behind it
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range families {
		known[f.GetName()] = true
	}
	series := regexp.MustCompile(`\b(?:starling|go|process)_[a-z0-9_]+`)
	n := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, name := range series.FindAllString(target.Expr, -1) {
				n++
				base := name
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(name, suffix); ok && known[b] {
						base = b
					}
				}
				if !known[base] {
					t.Errorf("panel %q: %s is not exported", p.Title, name)
				}
			}
		}
	}
	if n == 0 {
		t.Error("the dashboard names no series")
	}
}
