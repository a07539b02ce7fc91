// Package testwait waits in tests for a condition that other goroutines,
// processes or servers make true, instead of sleeping for a guessed time.
package testwait

import (
	"fmt"
	"testing"
	"time"
)

// Interval is how often Until checks its condition.
const Interval = 10 * time.Millisecond

// Until polls cond every Interval until it holds. After within it fails the
// test with what and the output of each diag, which is evaluated only then.
func Until(t testing.TB, within time.Duration, what string, cond func() bool, diag ...func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("timed out after %s waiting for %s", within, what)
			for _, f := range diag {
				msg += "\n" + f()
			}
			t.Fatal(msg)
		}
		<-tick.C
	}
}
