package backend

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/vault/sdk/logical"
)

// The creds benchmarks go through HandleRequest as Vault does. Compare
// BenchmarkCredsJWTFreshSignature with BenchmarkGolangJWTSign: the backend
// should cost little more than the RSA signature itself.
//
//	go test -run '^$' -bench 'Creds|GolangJWT' -benchtime 2s ./backend/

func benchJWTEnv(b *testing.B) *testEnv {
	b.Helper()
	e := newTestEnv(b, envOptions{})
	e.writeConfig("c", keyA(), appID1)
	e.mustWrite("roles/j", map[string]interface{}{"config": "c", "credential_type": "jwt"})
	return e
}

func benchCreds(b *testing.B, e *testEnv, role string, tick time.Duration) {
	b.Helper()
	path := "creds/" + role
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.clock.Add(tick)
		resp, err := e.b.HandleRequest(e.ctx, &logical.Request{
			Operation: logical.ReadOperation, Path: path, Storage: e.storage, MountPoint: "pure1/",
		})
		if err != nil || resp == nil || resp.IsError() || resp.Secret == nil {
			b.Fatalf("read %s: %v %v", path, resp, err)
		}
	}
}

// BenchmarkCredsJWTFreshSignature: the clock moves a second per read, so every
// read signs a new JWT.
func BenchmarkCredsJWTFreshSignature(b *testing.B) {
	benchCreds(b, benchJWTEnv(b), "j", time.Second)
}

// BenchmarkCredsJWTSameSecond: a fixed clock, so reads after the first reuse
// the JWT signed in that second.
func BenchmarkCredsJWTSameSecond(b *testing.B) {
	benchCreds(b, benchJWTEnv(b), "j", 0)
}

// BenchmarkGolangJWTSign is the baseline: one golang-jwt RS256 SignedString
// with the same key and the same claims (iss, iat, exp in seconds).
func BenchmarkGolangJWTSign(b *testing.B) {
	priv := keyA().priv
	iat := testEpoch
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		iat = iat.Add(time.Second)
		claims := jwt.RegisteredClaims{
			Issuer:    appID1,
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(iat.Add(time.Hour)),
		}
		s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(priv)
		if err != nil || s == "" {
			b.Fatal(err)
		}
	}
}

// BenchmarkCredsAccessTokenReuse: a reuse_access_token role whose shared token
// is cached: no exchange, no signature.
func BenchmarkCredsAccessTokenReuse(b *testing.B) {
	e, te := newEmulatorEnv(b, 0, envOptions{})
	e.emulatorConfig(te, "c", keyA())
	e.mustWrite("roles/at", map[string]interface{}{"config": "c", "reuse_access_token": true})
	e.creds("at")
	benchCreds(b, e, "at", time.Millisecond)
	b.StopTimer()
	if n := te.emu.Stats().TokenRequests; n != 1 {
		b.Fatalf("%d exchanges, want 1", n)
	}
}

// BenchmarkStaticCredsRead: a read of static-creds through HandleRequest, the
// token stored already: what the plugin adds to Vault's own request cost.
func BenchmarkStaticCredsRead(b *testing.B) {
	e, _, _ := staticEnvB(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := e.b.HandleRequest(e.ctx, &logical.Request{
			Operation: logical.ReadOperation, Path: "static-creds/fleet", Storage: e.storage, MountPoint: "pure1/",
		})
		if err != nil || resp == nil || resp.IsError() {
			b.Fatalf("read static-creds/fleet: %v %v", resp, err)
		}
	}
}

func staticEnvB(b *testing.B) (*testEnv, *testEmulator, string) {
	b.Helper()
	e, te := newEmulatorEnv(b, 10*time.Hour, envOptions{})
	app := e.emulatorConfig(te, "prod", keyA())
	e.mustWrite("static-roles/fleet", map[string]interface{}{"config": "prod"})
	e.mustRead("static-creds/fleet")
	return e, te, app
}
