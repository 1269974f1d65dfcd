package pure1

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Attempt describes one HTTP attempt of an exchange: what monitoring wants to
// know of the retries and of what Pure1 said about its rate limit, which
// Exchange's result alone does not show.
type Attempt struct {
	// StatusCode is the HTTP status Pure1 answered with; 0 when no answer
	// arrived (a network error, a timeout, a cancelled request).
	StatusCode int
	// Duration runs from sending the request to the end of reading the
	// answer (or to the error).
	Duration time.Duration
	// RetryAfter is the answer's Retry-After; 0 when it had none.
	RetryAfter time.Duration
	// RateLimitRemaining is the answer's X-RateLimit-Remaining, and
	// HasRateLimit whether it carried a number there.
	RateLimitRemaining float64
	HasRateLimit       bool
	// Err is the attempt's error; nil when it returned a token.
	Err error
}

// AttemptObserver is called after every attempt of an exchange, in order, on
// the goroutine running Exchange. It must not block.
type AttemptObserver func(Attempt)

type attemptObserverKey struct{}

// WithAttemptObserver returns a context under which HTTPExchanger.Exchange
// reports each of its attempts to observe. Carried by the context, so that
// each caller sees only its own exchange's attempts while one HTTPExchanger
// serves them all.
func WithAttemptObserver(ctx context.Context, observe AttemptObserver) context.Context {
	return context.WithValue(ctx, attemptObserverKey{}, observe)
}

func attemptObserverFrom(ctx context.Context) AttemptObserver {
	observe, _ := ctx.Value(attemptObserverKey{}).(AttemptObserver)
	return observe
}

// newAttempt describes an attempt from its answer (nil when none arrived).
func newAttempt(resp *http.Response, now time.Time, d time.Duration, err error) Attempt {
	a := Attempt{Duration: d, Err: err}
	if resp == nil {
		return a
	}
	a.StatusCode = resp.StatusCode
	a.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	if v := strings.TrimSpace(resp.Header.Get("X-RateLimit-Remaining")); v != "" {
		if n, perr := strconv.ParseFloat(v, 64); perr == nil && n >= 0 && !math.IsInf(n, 1) {
			a.RateLimitRemaining, a.HasRateLimit = n, true
		}
	}
	return a
}
