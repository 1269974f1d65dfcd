package pure1

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A token endpoint that redirects must not get the JWT re-sent elsewhere:
// the JWT is a bearer credential. The 3xx is returned as a refusal.
func TestExchangeDoesNotFollowRedirects(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer other.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()

	ex := NewHTTPExchanger(HTTPExchangerOptions{AttemptTimeout: 5 * time.Second})
	defer ex.client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := ex.Exchange(ctx, redirector.URL+"/oauth2/1.0/token", "header.payload.signature")
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("Exchange against a redirecting endpoint: %v, want ErrRejected", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect target got %d request(s): the JWT left for another address", n)
	}
}
