package pure1

import (
	"context"
	"errors"
	"testing"
)

// ParsePrivateKeyContext answers for the request: a request that has ended
// gets its context's error, not a key; a live one gets ParsePrivateKey's
// answer.
func TestParsePrivateKeyContext(t *testing.T) {
	t.Parallel()
	data := readFixture(t, "rsa2048-enc-pkcs8.pem")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if k, err := ParsePrivateKeyContext(ctx, data, []byte(testPassword)); k != nil || !errors.Is(err, context.Canceled) {
		t.Errorf("ended context: %v, %v; want context.Canceled", k, err)
	}
	k, err := ParsePrivateKeyContext(context.Background(), data, []byte(testPassword))
	if err != nil || k.Fingerprint() != opensslFingerprint(t, "rsa2048-enc-pkcs8.pem") {
		t.Errorf("live context: %v", err)
	}
	if _, err := ParsePrivateKeyContext(context.Background(), data, []byte(wrongPassword)); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("wrong password: %v", err)
	}
}
