package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/metrics"
	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/storage/sqlite"
)

// scrape returns the metrics as served, in the text format.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", metrics.Path, nil))
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// has reports whether text has the sample line, name{labels} value.
func has(text, line string) bool {
	return strings.Contains("\n"+text, "\n"+line+"\n")
}

func TestC2SAndS2S(t *testing.T) {
	m := metrics.New()
	m.C2S(func() c2s.Stats {
		return c2s.Stats{
			Logins:        map[string]uint64{"SCRAM-SHA-256": 3},
			LoginFailures: map[string]uint64{"not-authorized": 2, "throttled": 1},
			StanzasIn:     map[string]uint64{"message": 5, "presence": 0, "iq": 1},
			StanzasOut:    map[string]uint64{"message": 4},
			StreamCloses:  map[string]uint64{"client-closed": 1},
			QueueLengths:  c2s.Histogram{Bounds: []float64{1, 2}, Counts: []uint64{3, 1, 1}, Sum: 8, Count: 5},
			Sessions:      []c2s.SessionCount{{Transport: "tcp", State: "active", N: 2}, {Transport: "bosh", State: "detached", N: 0}},
		}
	})
	m.S2S(func() map[[2]string]int { return map[[2]string]int{{"out", "up"}: 1} })
	text := scrape(t, m)
	for _, line := range []string{
		`starling_c2s_logins_total{mechanism="SCRAM-SHA-256"} 3`,
		`starling_c2s_login_failures_total{reason="not-authorized"} 2`,
		`starling_c2s_login_failures_total{reason="throttled"} 1`,
		`starling_c2s_stanzas_received_total{kind="message"} 5`,
		`starling_c2s_stanzas_sent_total{kind="message"} 4`,
		`starling_c2s_stream_closes_total{reason="client-closed"} 1`,
		`starling_c2s_sessions{state="active",transport="tcp"} 2`,
		`starling_c2s_sessions{state="detached",transport="bosh"} 0`,
		`starling_c2s_outbound_queue_length_bucket{le="1"} 3`,
		`starling_c2s_outbound_queue_length_bucket{le="2"} 4`,
		`starling_c2s_outbound_queue_length_bucket{le="+Inf"} 5`,
		`starling_c2s_outbound_queue_length_sum 8`,
		`starling_s2s_streams{direction="out",state="up"} 1`,
	} {
		if !has(text, line) {
			t.Errorf("no %s in\n%s", line, text)
		}
	}
	// The Go runtime and process collectors.
	for _, name := range []string{"go_goroutines ", "go_memstats_heap_alloc_bytes ", "process_resident_memory_bytes "} {
		if !strings.Contains(text, "\n"+name) {
			t.Errorf("no %s", name)
		}
	}
}

func TestStoreTimesOperations(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	s := m.Store(db)
	defer s.Close()
	if _, err := s.Account(ctx, "example.org", "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Account: %v", err)
	}
	if err := s.InTx(ctx, func(tx storage.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// Untimed operations pass through.
	if _, err := s.ListAccounts(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	text := scrape(t, m)
	for _, line := range []string{
		`starling_storage_operation_duration_seconds_count{op="Account"} 1`,
		`starling_storage_operation_duration_seconds_count{op="InTx"} 1`,
		`starling_storage_operation_duration_seconds_count{op="StoreOffline"} 0`,
	} {
		if !has(text, line) {
			t.Errorf("no %s in\n%s", line, text)
		}
	}
}
