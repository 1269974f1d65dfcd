package backend

import (
	"testing"
	"time"
)

func TestDoublingBackoff(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{0, 10 * time.Second}, {1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second},
		{5, 160 * time.Second}, {6, 5 * time.Minute}, {64, 5 * time.Minute}, {1 << 20, 5 * time.Minute},
	} {
		if got := doublingBackoff(10*time.Second, 5*time.Minute, tc.failures); got != tc.want {
			t.Errorf("failure %d: waits %s, want %s", tc.failures, got, tc.want)
		}
	}
	// 24h after 10m doubling: reached at the 9th failure, and stays there.
	if got := doublingBackoff(10*time.Minute, 24*time.Hour, 9); got != 24*time.Hour {
		t.Errorf("10m doubling to 24h, 9th failure: %s", got)
	}
}
