package testwait_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/libs/testwait"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	testwait.Until(t, 5*time.Second, "the third check", func() bool { return n.Add(1) >= 3 })
	if got := n.Load(); got != 3 {
		t.Fatalf("checked %d times, want 3: Until must stop as soon as the condition holds", got)
	}
}

// recorder is a testing.TB that records Fatal instead of stopping the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatal(args ...any) {
	r.failed = args[0].(string)
}

func TestUntilFailsWithWhatAndDiagnostics(t *testing.T) {
	r := &recorder{TB: t}
	start := time.Now()
	testwait.Until(r, 50*time.Millisecond, "a condition that never holds",
		func() bool { return r.failed != "" }, // ends the loop once Fatal was recorded
		func() string { return "diagnostic output" })
	if time.Since(start) < 50*time.Millisecond {
		t.Fatalf("failed after %s, before the 50ms deadline", time.Since(start))
	}
	for _, want := range []string{"timed out after 50ms", "a condition that never holds", "diagnostic output"} {
		if !strings.Contains(r.failed, want) {
			t.Fatalf("failure %q does not contain %q", r.failed, want)
		}
	}
}
