//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// pollInterval is how often pollUntil asks.
const pollInterval = 100 * time.Millisecond

// poll calls cond at once and then every interval until it reports done,
// for at most timeout. cond returns, besides done, what it saw, for the
// error that says what was awaited when timeout passes first. Every wait
// of the suite goes through poll.
func poll(interval, timeout time.Duration, what string, cond func() (done bool, seen string)) error {
	var seen string
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(context.Context) (bool, error) {
		var done bool
		done, seen = cond()
		return done, nil
	})
	if err != nil {
		return fmt.Errorf("%s: not within %v; last seen: %s", what, timeout, seen)
	}
	return nil
}

// pollUntil polls cond every pollInterval until it reports done, and fails
// the test if timeout passes first.
func pollUntil(t testing.TB, timeout time.Duration, what string, cond func() (done bool, seen string)) {
	t.Helper()
	pollEvery(t, pollInterval, timeout, what, cond)
}

// pollEvery is pollUntil asking every interval.
func pollEvery(t testing.TB, interval, timeout time.Duration, what string, cond func() (done bool, seen string)) {
	t.Helper()
	if err := poll(interval, timeout, what, cond); err != nil {
		t.Fatal(err)
	}
}

// holdsFor polls cond every interval for d and fails the test at the first
// poll where it does not hold: the way to say "nothing changes for d".
func holdsFor(t testing.TB, interval, d time.Duration, what string, cond func() (holds bool, seen string)) {
	t.Helper()
	start := time.Now()
	held, after, seen := true, time.Duration(0), ""
	pollEvery(t, interval, d+time.Minute, what, func() (bool, string) {
		held, seen = cond()
		after = time.Since(start)
		return !held || after >= d, seen
	})
	if !held {
		t.Fatalf("%s: no longer after %v: %s", what, after.Round(time.Millisecond), seen)
	}
}
