package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1/emulator"
)

// scrape reads metrics?format=prometheus as Prometheus would and parses the
// exposition with Prometheus's own parser: every scrape in these tests is
// also a check that the output is valid.
func (e *testEnv) scrape() map[string]*dto.MetricFamily {
	e.t.Helper()
	resp, err := e.request(logical.ReadOperation, "metrics", map[string]interface{}{"format": "prometheus"})
	mustOK(e.t, "read metrics?format=prometheus", resp, err)
	if got := resp.Data[logical.HTTPStatusCode]; got != http.StatusOK {
		e.t.Fatalf("status %v, want 200", got)
	}
	if ct := resp.Data[logical.HTTPContentType]; ct != "text/plain; version=0.0.4; charset=utf-8" {
		e.t.Fatalf("content type %q", ct)
	}
	body, ok := resp.Data[logical.HTTPRawBody].([]byte)
	if !ok {
		e.t.Fatalf("raw body is %T, not []byte", resp.Data[logical.HTTPRawBody])
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		e.t.Fatalf("the exposition does not parse: %v\n%s", err, body)
	}
	return fams
}

// sample is the value of the series name{labels} in fams (a histogram's
// sample count), and whether it exists.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// series names one series for the tests: name and labels as "k=v,k=v".
type series struct {
	name, labels string
}

func (s series) String() string { return s.name + "{" + s.labels + "}" }

func (s series) labelMap() map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s.labels, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// values reads each series of want from fams; a missing one is -1.
func values(fams map[string]*dto.MetricFamily, want map[series]float64) map[series]float64 {
	got := map[series]float64{}
	for s := range want {
		v, ok := sample(fams, s.name, s.labelMap())
		if !ok {
			v = -1
		}
		got[s] = v
	}
	return got
}

func checkSeries(t *testing.T, fams map[string]*dto.MetricFamily, want map[series]float64) {
	t.Helper()
	got := values(fams, want)
	var keys []series
	for s := range want {
		keys = append(keys, s)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	for _, s := range keys {
		if got[s] != want[s] {
			t.Errorf("%s = %v, want %v (-1: absent)", s, got[s], want[s])
		}
	}
}

const (
	issuedOK      = "path=creds,role=at,config=a,credential_type=access_token,outcome=ok"
	issuedRefused = "path=creds,role=at,config=a,credential_type=access_token,outcome=refused"
	issuedFailed  = "path=creds,role=at,config=a,credential_type=access_token,outcome=failed"
)

// TestMetricsMove: each series moves when, and only when, its event happens.
// Every case starts from a fresh backend and emulator with config a and
// roles at (access_token) and jwt; the series it does not list must not
// exist.
func TestMetricsMove(t *testing.T) {
	issued := func(outcome string) series {
		return series{"pure1_credentials_issued_total", "config=a,credential_type=access_token,outcome=" + outcome + ",path=creds,role=at"}
	}
	exchanges := func(outcome string) series {
		return series{"pure1_exchanges_total", "config=a,outcome=" + outcome}
	}
	retries := series{"pure1_exchange_retries_total", "config=a"}
	duration := series{"pure1_exchange_duration_seconds", "config=a"}
	retryAfter := series{"pure1_retry_after_seconds", "config=a"}
	remaining := series{"pure1_ratelimit_remaining", "config=a"}
	pending := series{"pure1_key_rotation_pending", "config=a"}

	cases := []struct {
		name string
		do   func(t *testing.T, e *testEnv, te *testEmulator)
		want map[series]float64
	}{
		{
			name: "nothing read: only the stored state of config a",
			do:   func(*testing.T, *testEnv, *testEmulator) {},
			want: map[series]float64{pending: 0, issued("ok"): -1, exchanges("ok"): -1, duration: -1},
		},
		{
			name: "an access token",
			do:   func(t *testing.T, e *testEnv, _ *testEmulator) { e.creds("at") },
			// The failures exist at 0 from the first exchange on, for increase().
			want: map[series]float64{issued("ok"): 1, exchanges("ok"): 1, exchanges("unavailable"): 0, exchanges("rejected"): 0,
				exchanges("bad_response"): 0, duration: 1, retries: -1, retryAfter: 0, remaining: -1},
		},
		{
			name: "a JWT: no exchange",
			do:   func(t *testing.T, e *testEnv, _ *testEmulator) { e.creds("jwt"); e.creds("jwt") },
			want: map[series]float64{
				{"pure1_credentials_issued_total", "config=a,credential_type=jwt,outcome=ok,path=creds,role=jwt"}: 2,
				exchanges("ok"): -1, duration: -1,
			},
		},
		{
			name: "a transient failure retried",
			do: func(t *testing.T, e *testEnv, te *testEmulator) {
				te.emu.InjectFaults(emulator.Fault{Kind: emulator.FaultStatus, Status: 503})
				e.creds("at")
			},
			want: map[series]float64{issued("ok"): 1, exchanges("ok"): 1, retries: 1, duration: 1},
		},
		{
			name: "Pure1 unavailable",
			do: func(t *testing.T, e *testEnv, te *testEmulator) {
				te.emu.InjectFaults(emulator.Fault{Kind: emulator.FaultStatus, Status: 502, Count: int(testRetry.MaxAttempts)})
				expectReadFails(t, e, "creds/at")
			},
			want: map[series]float64{issued("failed"): 1, issued("ok"): -1, exchanges("unavailable"): 1, retries: 1, duration: 1},
		},
		{
			name: "Pure1 rejects the key",
			do: func(t *testing.T, e *testEnv, _ *testEmulator) {
				e.mustWrite("config/a", map[string]interface{}{"app_id": appID3})
				expectReadFails(t, e, "creds/at")
			},
			want: map[series]float64{issued("refused"): 1, exchanges("rejected"): 1, retries: -1},
		},
		{
			name: "Pure1 answers nonsense",
			do: func(t *testing.T, e *testEnv, te *testEmulator) {
				te.emu.InjectFaults(emulator.Fault{Kind: emulator.FaultNonJSON})
				expectReadFails(t, e, "creds/at")
			},
			want: map[series]float64{issued("failed"): 1, exchanges("bad_response"): 1},
		},
		{
			name: "no app_id: refused without an exchange",
			do: func(t *testing.T, e *testEnv, _ *testEmulator) {
				e.writeConfig("noapp", keyB(), "")
				e.mustWrite("roles/noapp", map[string]interface{}{"config": "noapp"})
				expectReadFails(t, e, "creds/noapp")
			},
			want: map[series]float64{
				{"pure1_credentials_issued_total", "config=noapp,credential_type=access_token,outcome=refused,path=creds,role=noapp"}: 1,
				{"pure1_key_rotation_pending", "config=noapp"}: 0,
				exchanges("rejected"):                          -1,
			},
		},
		{
			name: "an unknown role is not counted: its name is whatever the caller typed",
			do: func(t *testing.T, e *testEnv, _ *testEmulator) {
				expectReadFails(t, e, "creds/nosuchrole")
				for _, f := range e.scrape() {
					for _, m := range f.GetMetric() {
						for _, l := range m.GetLabel() {
							if l.GetValue() == "nosuchrole" {
								t.Errorf("%s has a series for the unknown role: %v", f.GetName(), m.GetLabel())
							}
						}
					}
				}
			},
			want: map[series]float64{pending: 0},
		},
		{
			name: "429 with Retry-After beyond the cap: Pure1's values kept",
			do: func(t *testing.T, e *testEnv, te *testEmulator) {
				te.emu.InjectFaults(emulator.Fault{Kind: emulator.FaultStatus, Status: 429, RetryAfter: "30"})
				expectReadFails(t, e, "creds/at")
			},
			want: map[series]float64{retryAfter: 30, remaining: 0, exchanges("unavailable"): 1, retries: -1},
		},
		{
			name: "Retry-After goes back to 0 with the next answer; the rate limit stays as last sent",
			do: func(t *testing.T, e *testEnv, te *testEmulator) {
				te.emu.InjectFaults(emulator.Fault{Kind: emulator.FaultStatus, Status: 429, RetryAfter: "30"})
				expectReadFails(t, e, "creds/at")
				e.creds("at")
			},
			want: map[series]float64{retryAfter: 0, remaining: 0, exchanges("unavailable"): 1, exchanges("ok"): 1},
		},
		{
			name: "a deleted config's series go, its counters too",
			do: func(t *testing.T, e *testEnv, te *testEmulator) {
				te.emu.InjectFaults(emulator.Fault{Kind: emulator.FaultStatus, Status: 429, RetryAfter: "30"})
				expectReadFails(t, e, "creds/at")
				e.mustDelete("roles/at")
				e.mustDelete("roles/jwt")
				e.mustDelete("config/a")
			},
			want: map[series]float64{retryAfter: -1, remaining: -1, pending: -1, exchanges("unavailable"): -1},
		},
		{
			name: "a shared token reused",
			do: func(t *testing.T, e *testEnv, _ *testEmulator) {
				e.mustWrite("roles/at", map[string]interface{}{"reuse_access_token": true})
				for i := 0; i < 3; i++ {
					e.creds("at")
				}
			},
			want: map[series]float64{
				issued("ok"): 3, exchanges("ok"): 1,
				{"pure1_readers_reused_token_total", "role=at"}:    2,
				{"pure1_readers_shared_exchange_total", "role=at"}: -1,
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, te := newEmulatorEnv(t, 0, envOptions{})
			e.emulatorConfig(te, "a", keyA())
			e.mustWrite("roles/at", map[string]interface{}{"config": "a"})
			e.mustWrite("roles/jwt", map[string]interface{}{"config": "a", "credential_type": "jwt"})
			c.do(t, e, te)
			checkSeries(t, e.scrape(), c.want)
		})
	}
}

func expectReadFails(t *testing.T, e *testEnv, path string) {
	t.Helper()
	if resp, err := e.read(path); errorText(resp, err) == "" {
		t.Fatalf("read %s succeeded", path)
	}
}

// TestMetricsRateLimitRemaining: X-RateLimit-Remaining of successful answers
// is kept, as Pure1 counts it down.
func TestMetricsRateLimitRemaining(t *testing.T) {
	clock := newClock(testEpoch) // frozen: every request falls in one rate-limit window
	emu, err := emulator.New(emulator.Options{Org: testOrg, Now: clock.Now, RateLimit: 50})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	te := &testEmulator{emu: emu, srv: srv, tokenURL: srv.URL + emulator.TokenPath,
		exchanger: pure1.NewHTTPExchanger(pure1.HTTPExchangerOptions{Client: srv.Client(), Now: clock.Now, Retry: testRetry, Hosts: loopbackHosts})}
	e := newTestEnv(t, envOptions{exchanger: te.exchanger, clock: clock})
	e.emulatorConfig(te, "a", keyA())
	e.mustWrite("roles/at", map[string]interface{}{"config": "a"})
	for i := 0; i < 3; i++ {
		e.creds("at")
	}
	checkSeries(t, e.scrape(), map[series]float64{{"pure1_ratelimit_remaining", "config=a"}: 47})
}

// gateExchanger blocks every exchange until release is closed, so that
// readers can be lined up behind one exchange without timing.
type gateExchanger struct {
	release chan struct{}
}

func (g *gateExchanger) Exchange(ctx context.Context, _, _ string) (*pure1.AccessToken, error) {
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &pure1.AccessToken{Token: "shared.access.token", TokenType: "Bearer", ExpiresAt: testEpoch.Add(10 * time.Hour)}, nil
}

// TestMetricsSharedExchange: readers that arrive while an exchange is in
// flight are counted as sharing it; the one that started it is not.
func TestMetricsSharedExchange(t *testing.T) {
	const readers = 5
	gate := &gateExchanger{release: make(chan struct{})}
	e := newTestEnv(t, envOptions{exchanger: gate})
	e.writeConfig("a", keyA(), appID2)
	e.mustWrite("roles/at", map[string]interface{}{"config": "a"})

	var wg sync.WaitGroup
	read := func() {
		defer wg.Done()
		if resp, err := e.read("creds/at"); errorText(resp, err) != "" {
			t.Errorf("read: %s", errorText(resp, err))
		}
	}
	wg.Add(1)
	go read()
	waitForWaiters(t, e.b, 1) // the first reader's exchange is in flight
	for i := 1; i < readers; i++ {
		wg.Add(1)
		go read()
	}
	waitForWaiters(t, e.b, readers)
	close(gate.release)
	wg.Wait()
	checkSeries(t, e.scrape(), map[series]float64{
		{"pure1_readers_shared_exchange_total", "role=at"}:                                                        readers - 1,
		{"pure1_exchanges_total", "config=a,outcome=ok"}:                                                          1,
		{"pure1_credentials_issued_total", "config=a,credential_type=access_token,outcome=ok,path=creds,role=at"}: readers,
	})
}

// TestMetricsStoredState: the gauges of stored state come from the state of
// each scrape alone: what a scrape does not find is not reported, and
// nothing of one scrape lingers into the next.
func TestMetricsStoredState(t *testing.T) {
	now := testEpoch
	m := newMetrics()
	gather := func(st storedState) map[string]*dto.MetricFamily {
		t.Helper()
		fams, err := m.gather(st)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*dto.MetricFamily{}
		for _, f := range fams {
			out[f.GetName()] = f
		}
		return out
	}
	expiry := func(role string) series { return series{"pure1_static_token_expiry_seconds", "role=" + role} }
	last := func(role string) series { return series{"pure1_static_last_refresh_timestamp_seconds", "role=" + role} }
	period := func(role string) series { return series{"pure1_static_rotation_period_seconds", "role=" + role} }
	age := func(c string) series { return series{"pure1_key_age_seconds", "config=" + c} }
	maxAge := func(c string) series { return series{"pure1_key_max_age_seconds", "config=" + c} }
	pending := func(c string) series { return series{"pure1_key_rotation_pending", "config=" + c} }

	cases := []struct {
		name string
		st   storedState
		want map[series]float64
	}{
		{
			name: "a fresh static token and an old key with a rotation pending",
			st: storedState{now: now,
				static: []staticTokenState{{Role: "s1", ExpiresAt: now.Add(90 * time.Minute), LastRefresh: now.Add(-30 * time.Minute), RotationPeriod: time.Hour}},
				keys:   []keyState{{Config: "a", CreatedAt: now.Add(-400 * 24 * time.Hour), MaxAge: 90 * 24 * time.Hour, RotationPending: true}},
			},
			want: map[series]float64{
				expiry("s1"): 5400, last("s1"): float64(now.Add(-30 * time.Minute).Unix()), period("s1"): 3600,
				age("a"): 400 * 86400, maxAge("a"): 90 * 86400, pending("a"): 1,
			},
		},
		{
			name: "an expired token; a key of unknown age without max_key_age",
			st: storedState{now: now,
				static: []staticTokenState{{Role: "s2", ExpiresAt: now.Add(-time.Minute), LastRefresh: now.Add(-3 * time.Hour), RotationPeriod: time.Hour}},
				keys:   []keyState{{Config: "b"}},
			},
			want: map[series]float64{
				expiry("s2"): -60, last("s2"): float64(now.Add(-3 * time.Hour).Unix()),
				age("b"): -1, maxAge("b"): -1, pending("b"): 0,
				// nothing of the previous scrape
				expiry("s1"): -1, age("a"): -1, pending("a"): -1,
			},
		},
		{
			name: "a static role with nothing stored yet",
			st:   storedState{now: now, static: []staticTokenState{{Role: "s3", RotationPeriod: 30 * time.Minute}}},
			want: map[series]float64{expiry("s3"): -1, last("s3"): -1, period("s3"): 1800, expiry("s2"): -1, pending("b"): -1},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkSeries(t, gather(c.st), c.want) })
	}
}

// TestMetricsStaticRefresh: refreshes are counted by the outcome their
// error maps to, wrapped or not.
func TestMetricsStaticRefresh(t *testing.T) {
	cases := []struct {
		err     error
		outcome string
	}{
		{nil, "ok"},
		{fmt.Errorf("after 1 attempt(s): %w", &pure1.APIError{StatusCode: 401}), "rejected"},
		{fmt.Errorf("%w: gave up", pure1.ErrUnavailable), "unavailable"},
		{fmt.Errorf("after 4 attempt(s): %w", &pure1.APIError{StatusCode: 503}), "unavailable"},
		{fmt.Errorf("%w: no access_token", pure1.ErrBadResponse), "bad_response"},
		{errors.New("storing the token: storage down"), "error"},
	}
	m := newMetrics()
	for _, c := range cases {
		m.observeStaticRefresh("s", "a", c.err)
	}
	fams, err := m.gather(storedState{now: testEpoch})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	want := map[series]float64{}
	for _, c := range cases {
		want[series{"pure1_static_refreshes_total", "config=a,outcome=" + c.outcome + ",role=s"}]++
	}
	checkSeries(t, byName, want)
}

// TestMetricsJSON: the default format is JSON: every declared series, each a
// map from label set to value.
func TestMetricsJSON(t *testing.T) {
	e, te := newEmulatorEnv(t, 0, envOptions{})
	e.emulatorConfig(te, "a", keyA())
	e.mustWrite("roles/at", map[string]interface{}{"config": "a"})
	e.creds("at")
	resp := e.mustRead("metrics")
	if _, raw := resp.Data[logical.HTTPRawBody]; raw {
		t.Fatal("the default format is raw")
	}
	for _, s := range e.b.metrics.series {
		if _, ok := resp.Data[s.name].(map[string]interface{}); !ok {
			t.Errorf("%s missing from the JSON form: %v", s.name, resp.Data[s.name])
		}
	}
	// As a client gets it, through JSON.
	b, err := json.Marshal(resp.Data)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Exchanges map[string]float64 `json:"pure1_exchanges_total"`
		Pending   map[string]float64 `json:"pure1_key_rotation_pending"`
		Duration  map[string]struct {
			Count   uint64            `json:"count"`
			Buckets map[string]uint64 `json:"buckets"`
		} `json:"pure1_exchange_duration_seconds"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if got.Exchanges["config=a,outcome=ok"] != 1 || got.Pending["config=a"] != 0 {
		t.Errorf("JSON form: %s", b)
	}
	if h := got.Duration["config=a"]; h.Count != 1 || h.Buckets["+Inf"] != 1 || len(h.Buckets) != len(exchangeBuckets)+1 {
		t.Errorf("histogram in the JSON form: %+v", h)
	}
}

// TestMetricsRequest: what the path takes and refuses.
func TestMetricsRequest(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	cases := []struct {
		data    map[string]interface{}
		wantErr string
	}{
		{nil, ""},
		{map[string]interface{}{"format": "json"}, ""},
		{map[string]interface{}{"format": "prometheus"}, ""},
		{map[string]interface{}{"format": "xml"}, "format"},
		{map[string]interface{}{"fromat": "prometheus"}, "unknown field"},
	}
	for _, c := range cases {
		resp, err := e.request(logical.ReadOperation, "metrics", c.data)
		msg := errorText(resp, err)
		if c.wantErr == "" && msg != "" || c.wantErr != "" && !strings.Contains(msg, c.wantErr) {
			t.Errorf("%v: error %q, want one containing %q", c.data, msg, c.wantErr)
		}
	}
	// A storage failure fails the scrape instead of reporting a partial state.
	e.storage.failList.Store(true)
	if resp, err := e.read("metrics"); err == nil {
		t.Errorf("a scrape with storage failing answered %v", resp)
	}
}

// TestMetricsConcurrent: scrapes during concurrent reads of several roles
// (run under -race) see counters only grow, and in the end exactly the reads
// that were made.
func TestMetricsConcurrent(t *testing.T) {
	const workers, reads = 4, 25
	e, te := newEmulatorEnv(t, 0, envOptions{})
	e.emulatorConfig(te, "a", keyA())
	roles := []string{"r0", "r1"}
	for _, r := range roles {
		e.mustWrite("roles/"+r, map[string]interface{}{"config": "a", "reuse_access_token": r == "r1"})
	}
	done := make(chan struct{})
	var scrapes sync.WaitGroup
	scrapes.Add(1)
	go func() {
		defer scrapes.Done()
		last := -1.0
		for {
			select {
			case <-done:
				return
			default:
			}
			resp, err := e.read("metrics")
			if msg := errorText(resp, err); msg != "" {
				t.Errorf("scrape: %s", msg)
				return
			}
			n := 0.0
			for _, v := range resp.Data["pure1_credentials_issued_total"].(map[string]interface{}) {
				n += v.(float64)
			}
			if n < last {
				t.Errorf("issued went down from %v to %v", last, n)
			}
			last = n
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < reads; i++ {
				if resp, err := e.read("creds/" + roles[(w+i)%len(roles)]); errorText(resp, err) != "" {
					t.Errorf("read: %s", errorText(resp, err))
				}
			}
		}(w)
	}
	wg.Wait()
	close(done)
	scrapes.Wait()

	fams := e.scrape()
	total := 0.0
	for _, r := range roles {
		v, _ := sample(fams, "pure1_credentials_issued_total", map[string]string{
			"path": "creds", "role": r, "config": "a", "credential_type": "access_token", "outcome": "ok"})
		total += v
	}
	if total != workers*reads {
		t.Errorf("%v reads counted, want %d", total, workers*reads)
	}
	exchanged, _ := sample(fams, "pure1_exchanges_total", map[string]string{"config": "a", "outcome": "ok"})
	shared, _ := sample(fams, "pure1_readers_shared_exchange_total", map[string]string{"role": "r1"})
	reused, _ := sample(fams, "pure1_readers_reused_token_total", map[string]string{"role": "r1"})
	// Every read of r0 exchanges or joins an exchange; every read of r1
	// exchanges, joins, or reuses.
	shared0, _ := sample(fams, "pure1_readers_shared_exchange_total", map[string]string{"role": "r0"})
	if exchanged+shared0+shared+reused != workers*reads {
		t.Errorf("exchanges %v + shared %v + %v + reused %v != %d reads", exchanged, shared0, shared, reused, workers*reads)
	}
}

// TestMetricsHelp: path-help documents the path, and the OpenAPI response
// names every series, so that the manual cannot fall behind metrics.go.
func TestMetricsHelp(t *testing.T) {
	e := newTestEnv(t, envOptions{})
	resp, err := e.request(logical.HelpOperation, "metrics", nil)
	mustOK(t, "help metrics", resp, err)
	if help, _ := resp.Data["help"].(string); !strings.Contains(help, "format=prometheus") {
		t.Errorf("help: %q", help)
	}
	b, err := json.Marshal(resp.Data["openapi"])
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, want := range []string{`"/metrics"`, `"pure1-read-metrics"`, `"format"`} {
		if !strings.Contains(doc, want) {
			t.Errorf("OpenAPI lacks %s", want)
		}
	}
	if len(e.b.metrics.series) != 24 {
		t.Errorf("%d series declared, want the 24 of docs/metrics-and-alerts.md", len(e.b.metrics.series))
	}
	readme, err := os.ReadFile("../docs/metrics-and-alerts.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range e.b.metrics.series {
		if !bytes.Contains(readme, []byte("`"+s.name+"`")) {
			t.Errorf("docs/metrics-and-alerts.md lacks %s: name it in the table of series", s.name)
		}
		if !strings.Contains(doc, `"`+s.name+`"`) {
			t.Errorf("OpenAPI lacks %s", s.name)
		}
		if !strings.HasPrefix(s.name, "pure1_") {
			t.Errorf("%s lacks the pure1_ prefix", s.name)
		}
		if s.kind != "gauge" && !strings.Contains(s.help, "starts at zero when the plugin starts") {
			t.Errorf("%s: help does not say it starts at zero", s.name)
		}
	}
}

// Reads of a static api_token role are counted under their own credential
// type, not as access tokens.
func TestMetricsStaticAPITokenType(t *testing.T) {
	env, _ := apiTokenEnv(t)
	env.mustWrite("static-roles/fleet", map[string]interface{}{fieldConfig: "fa", fieldCredentialType: credentialAPIToken,
		fieldArrayRole: "readonly", fieldRotationPeriod: "1h"})
	env.mustRead("static-creds/fleet")
	checkSeries(t, env.scrape(), map[series]float64{
		{"pure1_credentials_issued_total", "config=fa,credential_type=api_token,outcome=ok,path=static-creds,role=fleet"}:    1,
		{"pure1_credentials_issued_total", "config=fa,credential_type=access_token,outcome=ok,path=static-creds,role=fleet"}: -1,
	})
}
