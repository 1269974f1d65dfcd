package pure1

import (
	"context"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// seenAttempt is what the tests compare of an Attempt: all but Duration and
// the error's text.
type seenAttempt struct {
	Status       int
	RetryAfter   time.Duration
	Remaining    float64
	HasRateLimit bool
	Failed       bool
}

// TestAttemptObserver: every attempt of an exchange is reported, in order,
// with the status, Retry-After and X-RateLimit-Remaining Pure1 answered with.
func TestAttemptObserver(t *testing.T) {
	t.Parallel()
	access := makeAccessToken(t, jwt.MapClaims{"org": "1"})
	answer := func(status int, header map[string]string) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			for k, v := range header {
				w.Header().Set(k, v)
			}
			if status == http.StatusOK {
				writeJSON(w, status, okBody(access, 3600))
				return
			}
			writeJSON(w, status, `{"error":"x"}`)
		}
	}
	cases := []struct {
		name    string
		answers []func(http.ResponseWriter)
		want    []seenAttempt
	}{
		{
			name:    "one success with the rate limit",
			answers: []func(http.ResponseWriter){answer(200, map[string]string{"X-RateLimit-Remaining": "41"})},
			want:    []seenAttempt{{Status: 200, Remaining: 41, HasRateLimit: true}},
		},
		{
			name: "429 with Retry-After, then success without headers",
			answers: []func(http.ResponseWriter){
				answer(429, map[string]string{"Retry-After": "1", "X-RateLimit-Remaining": "0"}),
				answer(200, nil),
			},
			want: []seenAttempt{
				{Status: 429, RetryAfter: time.Second, HasRateLimit: true, Failed: true},
				{Status: 200},
			},
		},
		{
			name: "two 503s then success; a header that is no number is ignored",
			answers: []func(http.ResponseWriter){
				answer(503, map[string]string{"X-RateLimit-Remaining": "lots"}),
				answer(503, nil),
				answer(200, map[string]string{"X-RateLimit-Remaining": "7"}),
			},
			want: []seenAttempt{{Status: 503, Failed: true}, {Status: 503, Failed: true}, {Status: 200, Remaining: 7, HasRateLimit: true}},
		},
		{
			name:    "a rejection is one attempt",
			answers: []func(http.ResponseWriter){answer(401, nil)},
			want:    []seenAttempt{{Status: 401, Failed: true}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFakePure1(t, func(w http.ResponseWriter, _ *http.Request, hit int32) {
				c.answers[min(int(hit), len(c.answers))-1](w)
			})
			ex := newTestExchanger(t, HTTPExchangerOptions{})
			var got []seenAttempt
			ctx := WithAttemptObserver(testCtx(t), func(a Attempt) {
				if a.Duration < 0 {
					t.Errorf("attempt %d took %v", len(got)+1, a.Duration)
				}
				got = append(got, seenAttempt{a.StatusCode, a.RetryAfter, a.RateLimitRemaining, a.HasRateLimit, a.Err != nil})
			})
			_, _ = ex.Exchange(ctx, f.URL(), clientJWT(t))
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("observed\n%+v\nwant\n%+v", got, c.want)
			}
		})
	}
}

// TestAttemptObserverNoAnswer: an attempt that got no answer has status 0 and
// its error; a context without an observer observes nothing (and costs
// nothing).
func TestAttemptObserverNoAnswer(t *testing.T) {
	t.Parallel()
	ex := newTestExchanger(t, HTTPExchangerOptions{})
	var got []Attempt
	ctx := WithAttemptObserver(testCtx(t), func(a Attempt) { got = append(got, a) })
	if _, err := ex.Exchange(ctx, closedPortURL(t), clientJWT(t)); err == nil {
		t.Fatal("an exchange with a closed port succeeded")
	}
	if len(got) != int(fastRetry.MaxAttempts) {
		t.Fatalf("%d attempts observed, want %d", len(got), fastRetry.MaxAttempts)
	}
	for i, a := range got {
		if a.StatusCode != 0 || a.Err == nil || a.HasRateLimit {
			t.Errorf("attempt %d: %+v, want status 0 with an error", i+1, a)
		}
	}
	if attemptObserverFrom(context.Background()) != nil {
		t.Error("a bare context has an observer")
	}
}
