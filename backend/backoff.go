package backend

import "time"

// doublingBackoff is how long to wait after the failures-th failure in a
// row: first, doubling each time, never more than limit. The shift is
// bounded so a long outage cannot overflow the duration.
func doublingBackoff(first, limit time.Duration, failures int) time.Duration {
	wait := first << min(max(failures-1, 0), 30)
	if wait > limit || wait <= 0 {
		return limit
	}
	return wait
}
