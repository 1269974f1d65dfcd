package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
)

// promBins are Prometheus and promtool from Debian's prometheus package,
// which `make test-e2e` installs (scripts/install-prometheus.sh) when absent.
func promBins(t *testing.T) (prometheus, promtool string) {
	t.Helper()
	for _, name := range []string{"prometheus", "promtool"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("%s is not installed: run scripts/install-prometheus.sh (make test-e2e does)", name)
		}
		if name == "prometheus" {
			prometheus = p
		} else {
			promtool = p
		}
	}
	return prometheus, promtool
}

// TestPrometheusRules: the shipped scrape config and alert rules are what
// promtool accepts, and the rules pass their unit tests.
func TestPrometheusRules(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	_, promtool := promBins(t)
	dir := filepath.Join(RepoRoot(t), "bootstrap", "prometheus")
	// --syntax-only: the shipped config names /etc/prometheus/vault-pure1-token,
	// which exists only where it is deployed. TestPrometheus checks the
	// config in full once templated.
	runCmd(t, dir, promtool, "check", "config", "--syntax-only", "prometheus.yml")
	runCmd(t, dir, promtool, "check", "rules", "alerts.yml")
	out := runCmd(t, dir, promtool, "test", "rules", "alerts_test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules: %s", out)
	}
}

// TestPrometheus: a real Prometheus, with the shipped scrape config, alert
// rules and a token holding only the shipped metrics policy, scrapes a real
// Vault with the plugin, and sees what the reads and the faults injected at
// the emulator did: credentials by outcome, exchanges by outcome, retries,
// latency, Pure1's Retry-After and rate limit, the stored state of keys; and
// alerts fire on them.
func TestPrometheus(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	promBin, promtool := promBins(t)
	e := StartEmulator(t, "-rate-limit", "1000")
	v := StartVaultDev(t)
	Bootstrap(t, v, e)
	shipped := filepath.Join(RepoRoot(t), "bootstrap", "prometheus")

	v.MustCLI(t, "policy", "write", "pure1-metrics", filepath.Join(shipped, "metrics-policy.hcl"))
	token := strings.TrimSpace(v.MustCLI(t, "token", "create", "-policy=pure1-metrics", "-field=token"))

	t.Run("policy", func(t *testing.T) {
		if _, err := v.CLIAs(t, token, "read", "-format=json", Mount+"/metrics"); err != nil {
			t.Errorf("the metrics token cannot read metrics: %v", err)
		}
		for _, path := range []string{Mount + "/creds/readonly", Mount + "/config/main", Mount + "/roles/readonly"} {
			if _, err := v.CLIAs(t, token, "read", path); ExitCode(err) != 2 || !strings.Contains(err.Error(), "permission denied") {
				t.Errorf("the metrics token reading %s: %v, want permission denied", path, err)
			}
		}
	})

	// Prometheus in a directory of its own: the shipped config with this
	// Vault's address, the token file and a 1 s interval; the shipped rules.
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "vault-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vaultURL, err := url.Parse(v.Addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := templateFile(t, filepath.Join(shipped, "prometheus.yml"), map[string]string{
		"scheme: https":            "scheme: http",
		"'vault.example.com:8200'": "'" + vaultURL.Host + "'",
		"credentials_file: /etc/prometheus/vault-pure1-token": "credentials_file: " + tokenFile,
		"scrape_interval: 30s":                                "scrape_interval: 1s",
		"evaluation_interval: 30s":                            "evaluation_interval: 1s",
		"metrics_path: /v1/pure1/metrics":                     "metrics_path: /v1/" + Mount + "/metrics",
	})
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(shipped, "alerts.yml"), filepath.Join(dir, "alerts.yml"), 0o644)
	runCmd(t, dir, promtool, "check", "config", cfgPath)

	port := FreePort(t)
	prom := &promServer{URL: fmt.Sprintf("http://127.0.0.1:%d", port), client: &http.Client{Timeout: 10 * time.Second}}
	p := startProcess(t, "prometheus", []string{promBin,
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--log.level=warn",
	}, nil, filepath.Join(dir, "prometheus.log"))
	waitHTTP(t, p, prom.URL+"/-/ready", http.StatusOK, 60*time.Second, false)
	prom.waitFor(t, `up{job="vault-pure1"}`, 1)

	// A second config, whose application is deleted at Pure1 later: a
	// rejection. One good read first, so that its rejected series exists at
	// 0 before the rejection and increase() in the alert sees it.
	pub := jstr(t, v.MustCLIJSON(t, "write", "-format=json", Mount+"/config/other", "generate_key=true"), "data", "public_key")
	otherApp := e.Register(t, pub)
	v.MustCLI(t, "write", Mount+"/config/other", "app_id="+otherApp, "token_url="+e.TokenURL())
	v.MustCLI(t, "write", Mount+"/roles/other", "config=other")

	var tokens []string
	read := func(role string, wantOK bool) {
		t.Helper()
		out, err := v.CLI(t, "read", "-format=json", Mount+"/creds/"+role)
		switch {
		case wantOK && err != nil:
			t.Fatalf("read creds/%s: %v", role, err)
		case !wantOK && err == nil:
			t.Fatalf("read creds/%s succeeded", role)
		case wantOK:
			data, _ := mustJSONObject(t, out)["data"].(map[string]any)
			for _, k := range []string{"access_token", "jwt"} {
				if s, ok := data[k].(string); ok {
					tokens = append(tokens, s)
				}
			}
		}
	}
	read("other", true)
	prom.waitFor(t, `pure1_exchanges_total{config="other",outcome="rejected"}`, 0)
	for i := 0; i < 3; i++ {
		read("readonly", true)
	}
	read("readonly-jwt", true)
	read("readonly-jwt", true)
	// One 503: retried, the read succeeds.
	e.Fault(t, Fault{Kind: "status", Status: 503})
	read("readonly", true)
	// 503 on all four attempts: unavailable.
	e.Fault(t, Fault{Kind: "status", Status: 503, Count: 4})
	read("readonly", false)
	// Rejected: the application is gone at Pure1.
	e.Unregister(t, otherApp)
	read("other", false)
	prom.waitFor(t, `ALERTS{alertname="Pure1ExchangesRejected",alertstate="firing",config="other"}`, 1)

	// A 429 asking to wait 30 s, beyond the 10 s the plugin waits: Pure1's
	// Retry-After and X-RateLimit-Remaining: 0 are what Prometheus sees, and
	// the rate limit alert fires; the next good answer clears both.
	e.Fault(t, Fault{Kind: "status", Status: 429, RetryAfter: "30"})
	read("readonly", false)
	prom.waitFor(t, `pure1_retry_after_seconds{config="main"}`, 30)
	prom.waitFor(t, `pure1_ratelimit_remaining{config="main"}`, 0)
	prom.waitFor(t, `ALERTS{alertname="Pure1RateLimitNearlyExhausted",alertstate="firing",config="main"}`, 1)
	read("readonly", true)
	prom.waitFor(t, `pure1_retry_after_seconds{config="main"}`, 0)
	prom.waitFor(t, `pure1_ratelimit_remaining{config="main"} > 10`, -1)
	prom.waitFor(t, `count(ALERTS{alertname="Pure1RateLimitNearlyExhausted",alertstate="firing",config="main"}) or vector(0)`, 0)

	issued := func(role, typ, outcome string) string {
		return fmt.Sprintf(`pure1_credentials_issued_total{path="creds",role=%q,config=%q,credential_type=%q,outcome=%q}`,
			role, map[bool]string{true: "other", false: "main"}[role == "other"], typ, outcome)
	}
	for q, want := range map[string]float64{
		issued("readonly", "access_token", "ok"):                                                                5,
		issued("readonly", "access_token", "failed"):                                                            2,
		issued("readonly-jwt", "jwt", "ok"):                                                                     2,
		issued("other", "access_token", "ok"):                                                                   1,
		issued("other", "access_token", "refused"):                                                              1,
		`pure1_exchanges_total{config="main",outcome="ok"}`:                                                     5,
		`pure1_exchanges_total{config="main",outcome="unavailable"}`:                                            2,
		`pure1_exchanges_total{config="main",outcome="rejected"}`:                                               0,
		`pure1_exchanges_total{config="main",outcome="bad_response"}`:                                           0,
		`pure1_exchanges_total{config="other",outcome="rejected"}`:                                              1,
		`pure1_exchange_retries_total{config="main"}`:                                                           4, // 1 + 3
		`pure1_exchange_duration_seconds_count{config="main"}`:                                                  7,
		`pure1_exchange_duration_seconds_bucket{config="main",le="+Inf"}`:                                       7,
		`pure1_key_rotation_pending{config="main"}`:                                                             0,
		`pure1_key_rotation_pending{config="other"}`:                                                            0,
		`count(pure1_readers_shared_exchange_total) or vector(0)`:                                               0,
		`count({__name__=~"pure1_.*",app_id!=""}) or vector(0)`:                                                 0,
		`count(pure1_credentials_issued_total{role="nosuch"}) or vector(0)`:                                     0,
		`pure1_exchanges_total{config="other",outcome="ok"}`:                                                    1,
		`sum(pure1_exchanges_total{config="main"}) - sum(pure1_exchange_duration_seconds_count{config="main"})`: 0,
	} {
		prom.waitFor(t, q, want)
	}

	// A static role: its first token, a refresh on demand, a read; then a
	// refresh that Pure1 refuses (the application is gone) while the current
	// token is still served.
	v.MustCLI(t, "write", Mount+"/static-roles/fleet", "config=main", "rotation_period=1h")
	staticTok := strings.TrimSpace(v.MustCLI(t, "read", "-field=access_token", Mount+"/static-creds/fleet"))
	tokens = append(tokens, staticTok)
	v.MustCLI(t, "write", "-f", Mount+"/static-roles/fleet/refresh")
	tokens = append(tokens, strings.TrimSpace(v.MustCLI(t, "read", "-field=access_token", Mount+"/static-creds/fleet")))
	for q, want := range map[string]float64{
		`pure1_static_refreshes_total{role="fleet",config="main",outcome="ok"}`:                                                      2,
		`pure1_static_rotation_period_seconds{role="fleet"}`:                                                                         3600,
		`pure1_static_token_expiry_seconds{role="fleet"} > 35000`:                                                                    -1,
		`time() - pure1_static_last_refresh_timestamp_seconds{role="fleet"} < 120`:                                                   -1,
		`pure1_credentials_issued_total{path="static-creds",role="fleet",config="main",credential_type="access_token",outcome="ok"}`: 2,
	} {
		prom.waitFor(t, q, want)
	}
	e.Unregister(t, jstr(t, v.MustCLIJSON(t, "read", "-format=json", Mount+"/config/main"), "data", "app_id"))
	if _, err := v.CLI(t, "write", "-f", Mount+"/static-roles/fleet/refresh"); err == nil {
		t.Errorf("a refresh with the application gone succeeded")
	}
	prom.waitFor(t, `pure1_static_refreshes_total{role="fleet",config="main",outcome="rejected"}`, 1)

	// What Prometheus scraped, fetched the same way: the text format through
	// Vault's raw response, parseable, and free of the credentials issued.
	req, err := http.NewRequest(http.MethodGet, v.Addr+"/v1/"+Mount+"/metrics?format=prometheus", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("GET metrics?format=prometheus: %s, Content-Type %q: %.300s", resp.Status, ct, body)
	}
	var parser expfmt.TextParser
	if _, err := parser.TextToMetricFamilies(strings.NewReader(string(body))); err != nil {
		t.Errorf("the exposition does not parse: %v", err)
	}
	for _, s := range append(tokens, otherApp, "pure1:apikey:") {
		if strings.Contains(string(body), s) {
			t.Errorf("the metrics contain %.24q...", s)
		}
	}
	if len(tokens) != 10 {
		t.Errorf("%d credentials collected, want 10", len(tokens))
	}
}

// templateFile is the file at path with each key of repl replaced by its
// value. Every key must occur exactly once, so that the test fails when the
// shipped file changes under it rather than testing something else.
func templateFile(t *testing.T, path string, repl map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for from, to := range repl {
		if n := strings.Count(s, from); n != 1 {
			t.Fatalf("%s: %q occurs %d times, want once", path, from, n)
		}
		s = strings.Replace(s, from, to, 1)
	}
	return s
}

// promServer is a running Prometheus, queried through its HTTP API.
type promServer struct {
	URL    string
	client *http.Client
}

// query runs an instant query and returns the value of its single sample;
// ok is false when the result is empty or not one sample.
func (p *promServer) query(q string) (value float64, ok bool, msg string) {
	resp, err := p.client.Get(p.URL + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, false, err.Error()
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, false, fmt.Sprintf("HTTP %d, %v", resp.StatusCode, err)
	}
	if r.Status != "success" {
		return 0, false, "query failed: " + r.Error
	}
	if len(r.Data.Result) != 1 {
		return 0, false, fmt.Sprintf("%d samples: %v", len(r.Data.Result), r.Data.Result)
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false, fmt.Sprintf("value %q", s)
	}
	return f, true, fmt.Sprintf("%v = %v", r.Data.Result[0].Metric, f)
}

// waitFor waits until query q gives one sample of value want (-1: any
// value, for a query whose filter is the check). Prometheus sees a change
// one scrape and one evaluation later, at 1 s each.
func (p *promServer) waitFor(t *testing.T, q string, want float64) {
	t.Helper()
	eventually(t, 60*time.Second, 250*time.Millisecond, "Prometheus: "+q, func() (bool, string) {
		got, ok, msg := p.query(q)
		return ok && (want == -1 || got == want), fmt.Sprintf("want %v, got %s", want, msg)
	})
}
