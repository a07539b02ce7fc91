package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// Figure is one row of the table: a measured value and, when issue 2 sets
// one, its target and whether it was met. Targets are reported, never
// asserted.
type Figure struct {
	Mode   string  `json:"mode"` // durability mode, or "-" for mode-independent figures
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Detail string  `json:"detail,omitempty"`
	Target string  `json:"target,omitempty"`
	// Ratio is Value relative to RatioOf (a baseline or the target's limit).
	Ratio   float64 `json:"ratio,omitempty"`
	RatioOf string  `json:"ratio_of,omitempty"`
	Status  string  `json:"status,omitempty"` // PASS, MISS, or empty for information
}

const (
	pass = "PASS"
	miss = "MISS"
)

func status(ok bool) string {
	if ok {
		return pass
	}
	return miss
}

func latencyDetail(l Latency) string {
	return fmt.Sprintf("p50 %.2f / p95 %.2f / p99 %.2f ms", l.P50, l.P95, l.P99)
}

// figures turns the results into the table's rows.
func figures(r *Results) []Figure {
	var out []Figure
	for _, m := range r.Modes {
		mode := m.Mode.Name
		if m.Raw != nil {
			out = append(out, Figure{Mode: mode, Name: fmt.Sprintf("raw JetStream publish+ack, C=%d", m.Raw.Concurrency),
				Value: m.Raw.PerSecond, Unit: "msg/s", Detail: latencyDetail(m.Raw.Latency) + fmt.Sprintf(", %d B/msg, %.0f µs CPU/msg", m.EventSize.TotalBytes, m.Raw.CPUMicrosPerOp)})
		}
		if m.Intake != nil {
			f := Figure{Mode: mode, Name: fmt.Sprintf("intake POST /v1/tickets, C=%d", m.Intake.Concurrency),
				Value: m.Intake.PerSecond, Unit: "tickets/s",
				Detail: latencyDetail(m.Intake.Latency) + fmt.Sprintf(", %d errors, %.0f µs CPU/ticket", m.Intake.Errors, m.Intake.CPUMicrosPerOp),
				Target: ">= 50% of raw"}
			if m.IntakeToRaw > 0 {
				f.Ratio, f.RatioOf, f.Status = m.IntakeToRaw, "raw", status(m.IntakeToRaw >= 0.5)
			}
			out = append(out, f)
		}
		if m.IntakeAlone != nil {
			f := Figure{Mode: mode, Name: fmt.Sprintf("  same, projection paused, C=%d", m.IntakeAlone.Concurrency),
				Value: m.IntakeAlone.PerSecond, Unit: "tickets/s",
				Detail: latencyDetail(m.IntakeAlone.Latency) + fmt.Sprintf(", %.0f µs CPU/ticket", m.IntakeAlone.CPUMicrosPerOp)}
			if m.Raw != nil && m.Raw.PerSecond > 0 {
				f.Ratio, f.RatioOf = m.IntakeAlone.PerSecond/m.Raw.PerSecond, "raw"
			}
			out = append(out, f)
		}
		if m.Half != nil {
			out = append(out, Figure{Mode: mode, Name: fmt.Sprintf("POST p99 at half peak (%.0f/s, open loop)", m.Half.TargetRate),
				Value: m.Half.Latency.P99, Unit: "ms",
				Detail: latencyDetail(m.Half.Latency) + fmt.Sprintf(", %.0f/s done, %d errors", m.Half.PerSecond, m.Half.Errors),
				Target: "< 20 ms", Ratio: m.Half.Latency.P99 / 20, RatioOf: "limit",
				Status: status(m.Half.Latency.P99 < 20 && m.Half.Errors == 0)})
		}
		if e := m.E2E; e != nil && e.Lag.Count > 0 {
			name := fmt.Sprintf("projection lag p99 at %.0f tickets/s", e.Rate)
			detail := fmt.Sprintf("p50 %.2f / p95 %.2f ms, %d tickets, %d commits", e.Lag.P50, e.Lag.P95, e.Lag.Count, e.CheckpointMoves)
			st := status(e.Lag.P99 < 500)
			if !e.Sustainable {
				if u := e.Unsustained; u != nil {
					detail += fmt.Sprintf("; at %.0f/s intake served %.0f/s with POST p50 %.0f ms (not sustained), so measured at half the peak",
						e.RequestedRate, u.PerSecond, u.Latency.P50)
				}
				st = miss
			}
			out = append(out, Figure{Mode: mode, Name: name, Value: e.Lag.P99, Unit: "ms", Detail: detail,
				Target: "< 500 ms at 1,000/s", Ratio: e.Lag.P99 / 500, RatioOf: "limit", Status: st})
		}
	}
	if rb := r.Rebuild; rb != nil && rb.EventsPerSecond > 0 {
		out = append(out, Figure{Mode: "-", Name: fmt.Sprintf("rebuild %d events into empty read model", rb.Events),
			Value: rb.EventsPerSecond, Unit: "events/s", Detail: fmt.Sprintf("%.2f s", rb.Seconds),
			Target: ">= 50,000/s", Ratio: rb.EventsPerSecond / 50_000, RatioOf: "target", Status: status(rb.EventsPerSecond >= 50_000)})
		if rb.Copy.RowsPerSecond > 0 {
			out = append(out, Figure{Mode: "-", Name: "baseline: same rows with COPY (one tx)",
				Value: rb.Copy.RowsPerSecond, Unit: "events/s", Detail: fmt.Sprintf("%.2f s; 2 table rows per event", rb.Copy.Seconds),
				Ratio: rb.EventsPerSecond / rb.Copy.RowsPerSecond, RatioOf: "rebuild/COPY"})
		}
		if rb.CopyNoSearch.RowsPerSecond > 0 {
			out = append(out, Figure{Mode: "-", Name: "  COPY without the full-text column + GIN",
				Value: rb.CopyNoSearch.RowsPerSecond, Unit: "events/s", Detail: fmt.Sprintf("%.2f s; what to_tsvector and its index cost", rb.CopyNoSearch.Seconds),
				Ratio: rb.EventsPerSecond / rb.CopyNoSearch.RowsPerSecond, RatioOf: "rebuild/this"})
		}
		if rb.Insert.RowsPerSecond > 0 {
			out = append(out, Figure{Mode: "-", Name: fmt.Sprintf("baseline: same rows, batched INSERT (%d/tx)", rb.BatchSize),
				Value: rb.Insert.RowsPerSecond, Unit: "events/s", Detail: fmt.Sprintf("%.2f s", rb.Insert.Seconds),
				Ratio: rb.EventsPerSecond / rb.Insert.RowsPerSecond, RatioOf: "rebuild/INSERT"})
		}
	}
	if mem := r.Memory; mem != nil && mem.After.RSS > 0 {
		out = append(out, Figure{Mode: "-", Name: "nats-server RSS per 100k ticket aggregates",
			Value: mem.RSSMiBPer100k, Unit: "MiB",
			Detail: fmt.Sprintf("Go heap %.1f MiB, on disk %.1f MiB; measured over %d aggregates", mem.HeapMiBPer100k, mem.StoreMiBPer100k, mem.Aggregates)})
	}
	return out
}

func formatValue(f Figure) string {
	switch {
	case f.Unit == "ms":
		return fmt.Sprintf("%.2f %s", f.Value, f.Unit)
	case f.Unit == "MiB":
		return fmt.Sprintf("%.1f %s", f.Value, f.Unit)
	default:
		return groupThousands(int64(f.Value+0.5)) + " " + f.Unit
	}
}

func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func formatRatio(f Figure) string {
	if f.Ratio == 0 {
		return ""
	}
	if f.RatioOf == "limit" {
		return fmt.Sprintf("%.2fx of limit", f.Ratio)
	}
	return fmt.Sprintf("%.0f%% of %s", 100*f.Ratio, f.RatioOf)
}

// printTable writes the figures as an aligned table.
func printTable(w io.Writer, r *Results) {
	m := r.Machine
	fmt.Fprintf(w, "\nOpsDesk benchmark: %d CPUs (%s), %d MiB, %s, nats-server %s, Postgres %s\n",
		m.CPUs, m.CPUModel, m.MemoryMiB, m.Go, m.NATSServer, m.Postgres)
	fmt.Fprintf(w, "phases of %s, concurrency %d, rebuild %d events, memory over %d aggregates; took %.0f s\n",
		r.Config.Duration, r.Config.Concurrency, r.Config.RebuildEvents, r.Config.MemAggregates, r.Seconds)
	fmt.Fprintf(w, "load average (1 min) at start %.2f, at end %.2f: other work on the machine lowers every figure\n", r.LoadStart, r.LoadEnd)
	if r.Config.Quick {
		fmt.Fprintln(w, "QUICK RUN: tiny numbers to prove the program works; the figures are not representative.")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODE\tFIGURE\tVALUE\tTARGET\tRATIO\tSTATUS\tDETAIL")
	for _, f := range r.Figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Mode, f.Name, formatValue(f), f.Target, formatRatio(f), f.Status, f.Detail)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nmodes: default = JetStream acks once the OS has the write, fsync every 2 min; sync_always = fsync before every ack.")
	for _, e := range r.Errors {
		fmt.Fprintf(w, "ERROR %s\n", e)
	}
}

// writeJSON writes r, indented, to path.
func writeJSON(path string, r *Results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
