package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	// The memory phase re-executes this binary as a bare nats-server.
	if natsChild() {
		return
	}
	os.Exit(m.Run())
}

// TestQuickRun runs every phase of the program in both durability modes
// with tiny numbers, through its command line, and checks that each
// figure was measured and the JSON written. It proves the benchmark works;
// it asserts no performance target.
func TestQuickRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout bytes.Buffer
	err := cli([]string{"-quick", "-duration", "400ms", "-concurrency", "4", "-rebuild-events", "600",
		"-mem-aggregates", "2000", "-out", out}, &stdout)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stdout.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("JSON not written: %v", err)
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("JSON does not decode: %v", err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("phases failed: %v", res.Errors)
	}
	if len(res.Modes) != 2 || res.Modes[0].Mode != durabilityDefault || res.Modes[1].Mode != durabilitySyncAlways {
		t.Fatalf("modes %+v, want default then sync_always", res.Modes)
	}
	for _, m := range res.Modes {
		positive(t, m.Mode.Name+" event size", float64(m.EventSize.TotalBytes))
		if m.Raw == nil || m.Intake == nil || m.IntakeAlone == nil || m.Half == nil || m.E2E == nil {
			t.Fatalf("%s: a phase is missing: %+v", m.Mode.Name, m)
		}
		positive(t, m.Mode.Name+" raw msg/s", m.Raw.PerSecond)
		positive(t, m.Mode.Name+" raw p99", m.Raw.Latency.P99)
		positive(t, m.Mode.Name+" intake tickets/s", m.Intake.PerSecond)
		positive(t, m.Mode.Name+" intake p99", m.Intake.Latency.P99)
		positive(t, m.Mode.Name+" intake/raw", m.IntakeToRaw)
		positive(t, m.Mode.Name+" intake, projection paused", m.IntakeAlone.PerSecond)
		positive(t, m.Mode.Name+" half p99", m.Half.Latency.P99)
		positive(t, m.Mode.Name+" e2e tickets", float64(m.E2E.Lag.Count))
		positive(t, m.Mode.Name+" e2e commits", float64(m.E2E.CheckpointMoves))
		if m.Intake.Errors != 0 || m.Half.Errors != 0 || m.E2E.Load.Errors != 0 {
			t.Errorf("%s: requests failed: peak %v, half %v, e2e %v (%s%s%s)", m.Mode.Name,
				m.Intake.Statuses, m.Half.Statuses, m.E2E.Load.Statuses,
				m.Intake.FirstError, m.Half.FirstError, m.E2E.Load.FirstError)
		}
	}
	if res.Rebuild == nil || res.Memory == nil {
		t.Fatal("rebuild or memory phase missing")
	}
	positive(t, "rebuild events/s", res.Rebuild.EventsPerSecond)
	positive(t, "COPY rows/s", res.Rebuild.Copy.RowsPerSecond)
	positive(t, "INSERT rows/s", res.Rebuild.Insert.RowsPerSecond)
	positive(t, "COPY without search rows/s", res.Rebuild.CopyNoSearch.RowsPerSecond)
	positive(t, "nats RSS after", float64(res.Memory.After.RSS))
	positive(t, "nats heap per 100k", res.Memory.HeapMiBPer100k)
	positive(t, "store per 100k", res.Memory.StoreMiBPer100k)

	// The table names every targeted figure with a verdict.
	table := stdout.String()
	for _, want := range []string{"raw JetStream publish+ack", "intake POST /v1/tickets", "projection paused", "POST p99 at half peak",
		"projection lag p99", "rebuild 600 events", "COPY", "INSERT", "nats-server RSS per 100k", "sync_always"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	for _, f := range res.Figures {
		if f.Target != "" && f.Status != pass && f.Status != miss {
			t.Errorf("figure %q has a target but status %q", f.Name, f.Status)
		}
	}
}

func positive(t *testing.T, what string, v float64) {
	t.Helper()
	if !(v > 0) {
		t.Errorf("%s = %v, want > 0", what, v)
	}
}
