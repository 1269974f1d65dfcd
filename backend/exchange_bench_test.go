package backend

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1/emulator"
)

// BenchmarkExchangeOverhead measures what the plugin adds to Pure1's own
// round trip, against an in-process emulator on loopback. Each iteration does
// both, alternately, so they share the machine's state:
//   - raw:   one POST of a JWT to the token endpoint on a keep-alive client,
//     what any Pure1 client pays;
//   - creds: one creds/<access_token role> read through HandleRequest, as
//     Vault calls it (sign, exchange, parse, build the lease).
//
// It reports p50 of each and overhead-p50-ns = creds - raw (target: <= 1 ms).
func BenchmarkExchangeOverhead(b *testing.B) {
	ctx := context.Background()
	emu, err := emulator.New(emulator.Options{})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(emu.Handler())
	defer srv.Close()
	tokenURL := srv.URL + "/oauth2/1.0/token"

	be := newBackend(Options{Hosts: loopbackHosts})
	conf := logical.TestBackendConfig()
	conf.StorageView = &logical.InmemStorage{}
	conf.Logger = hclog.NewNullLogger()
	if err := be.Setup(ctx, conf); err != nil {
		b.Fatal(err)
	}
	storage := conf.StorageView
	call := func(op logical.Operation, path string, data map[string]interface{}) *logical.Response {
		resp, err := be.HandleRequest(ctx, &logical.Request{Operation: op, Path: path, Data: data, Storage: storage, MountPoint: "pure1/"})
		if err != nil || (resp != nil && resp.IsError()) {
			b.Fatalf("%s %s: %v %v", op, path, err, resp)
		}
		return resp
	}
	resp := call(logical.CreateOperation, "config/main", map[string]interface{}{"generate_key": true, "token_url": tokenURL})
	app, err := emu.Register(resp.Data[fieldPublicKey].(string), "viewer")
	if err != nil {
		b.Fatal(err)
	}
	call(logical.UpdateOperation, "config/main", map[string]interface{}{"app_id": app.ID})
	call(logical.CreateOperation, "roles/readonly", map[string]interface{}{"config": "main"})

	cfg, err := be.getConfig(ctx, storage, "main")
	if err != nil || cfg == nil {
		b.Fatal("config not readable", err)
	}
	jwt, _, err := cfg.signer(time.Now(), time.Hour, "")
	if err != nil {
		b.Fatal(err)
	}
	form := url.Values{
		"grant_type":         {pure1.GrantTypeExchange},
		"subject_token_type": {pure1.SubjectTokenTypeJWT},
		"subject_token":      {jwt},
	}.Encode()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	raw := func() {
		resp, err := client.Post(tokenURL, "application/x-www-form-urlencoded", strings.NewReader(form))
		if err != nil {
			b.Fatal(err)
		}
		var buf [4096]byte
		for {
			if _, err := resp.Body.Read(buf[:]); err != nil {
				break
			}
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("raw exchange: HTTP %d", resp.StatusCode)
		}
	}
	creds := func() { call(logical.ReadOperation, "creds/readonly", nil) }
	raw()
	creds()

	rawLat := make([]time.Duration, 0, b.N)
	credsLat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		raw()
		t1 := time.Now()
		creds()
		t2 := time.Now()
		rawLat = append(rawLat, t1.Sub(t0))
		credsLat = append(credsLat, t2.Sub(t1))
	}
	b.StopTimer()
	p50 := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	r, c := p50(rawLat), p50(credsLat)
	b.ReportMetric(float64(r.Nanoseconds()), "raw-p50-ns")
	b.ReportMetric(float64(c.Nanoseconds()), "creds-p50-ns")
	b.ReportMetric(float64((c - r).Nanoseconds()), "overhead-p50-ns")
}
