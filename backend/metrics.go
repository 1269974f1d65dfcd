package backend

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// Every series the engine exports is declared in this file; the rest of the
// code only calls the observe* methods below, and the metrics path gathers.
//
// Each mount has a registry of its own, never the global one: Vault runs one
// plugin process for all mounts of the engine (multiplexing), and one mount's
// series must not show up under another's path. Labels are role and config
// names, which an operator chose and which are not secret; never a token, a
// key, an app ID or an error text (unbounded, and possibly sensitive).

// Label names.
const (
	labelPath           = "path"
	labelRole           = "role"
	labelReason         = "reason"
	labelConfig         = "config"
	labelCredentialType = "credential_type"
	labelOutcome        = "outcome"
)

// Values of the path label of pure1_credentials_issued_total.
const (
	metricsPathCreds       = "creds"
	metricsPathStaticCreds = "static-creds"
)

// Values of the outcome label of credential reads.
const (
	// outcomeOK: the reader got a credential.
	outcomeOK = "ok"
	// outcomeRefused: the reader got an error response that someone must act
	// on (config without app_id, Pure1 refusing the key): HTTP 400.
	outcomeRefused = "refused"
	// outcomeFailed: Vault answered with a server error (Pure1 unavailable
	// or answering nonsense, storage failing) or the reader gave up.
	outcomeFailed = "failed"
)

// Values of the outcome label of Pure1 exchanges and static refreshes.
const (
	outcomeRejected    = "rejected"     // pure1.ErrRejected: fix the app ID or key
	outcomeUnavailable = "unavailable"  // pure1.ErrUnavailable: Pure1 down, slow, rate limiting
	outcomeBadResponse = "bad_response" // pure1.ErrBadResponse: 200 without a usable token
	outcomeError       = "error"        // not Pure1's answer: signing, storage
)

// counterNote ends the help of every counter: a counter lives in the plugin
// process, so a plugin restart, reload or upgrade, or a failover to another
// node, starts it again from zero. Prometheus's rate() and increase() take
// such resets in their stride.
const counterNote = " Counted by the Vault node that served the request; starts at zero when the plugin starts."

// exchangeBuckets span one fast exchange to the whole retry budget
// (pure1.DefaultRetryPolicy.MaxElapsed is 45 s).
var exchangeBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 45}

// metrics holds one mount's series.
type metrics struct {
	registry *prometheus.Registry
	// series lists every declared series in declaration order, for the JSON
	// form and the path's OpenAPI response.
	series []seriesInfo

	credentialsIssued  *prometheus.CounterVec
	exchanges          *prometheus.CounterVec
	exchangeRetries    *prometheus.CounterVec
	exchangeDuration   *prometheus.HistogramVec
	readersShared      *prometheus.CounterVec
	readersReused      *prometheus.CounterVec
	staticRefreshes    *prometheus.CounterVec
	rateLimitRemaining *prometheus.GaugeVec
	retryAfter         *prometheus.GaugeVec
	clientsDeleted     *prometheus.CounterVec
	deleteFailures     *prometheus.CounterVec
	rotationFailures   *prometheus.CounterVec
	usersCreated       *prometheus.CounterVec
	usersRevoked       *prometheus.CounterVec
	userRevokeFailures *prometheus.CounterVec
	usersTidied        *prometheus.CounterVec
	adminLogins        *prometheus.CounterVec

	// Gauges of what storage holds, computed at each scrape (see
	// storedStateCollector), so that every node reports the same.
	staticExpiry         *prometheus.Desc
	staticLastRefresh    *prometheus.Desc
	staticRotationPeriod *prometheus.Desc
	keyAge               *prometheus.Desc
	keyMaxAge            *prometheus.Desc
	keyRotationPending   *prometheus.Desc
	pendingDeletions     *prometheus.Desc
}

type seriesInfo struct {
	name, help, kind string
}

func newMetrics() *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help + counterNote}, labels)
		m.registry.MustRegister(v)
		m.series = append(m.series, seriesInfo{name, help + counterNote, "counter"})
		return v
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		m.registry.MustRegister(v)
		m.series = append(m.series, seriesInfo{name, help, "gauge"})
		return v
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		// A histogram's count and sum are counters too.
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help + counterNote, Buckets: buckets}, labels)
		m.registry.MustRegister(v)
		m.series = append(m.series, seriesInfo{name, help + counterNote, "histogram"})
		return v
	}
	stored := func(name, help string, labels ...string) *prometheus.Desc {
		m.series = append(m.series, seriesInfo{name, help, "gauge"})
		return prometheus.NewDesc(name, help, labels, nil)
	}

	m.credentialsIssued = counter("pure1_credentials_issued_total",
		"Credential reads by path (creds, static-creds), role, config, credential type and outcome: ok, refused (an error response "+
			"someone must act on, HTTP 400), failed (a server error such as Pure1 unavailable, or the reader gave up).",
		labelPath, labelRole, labelConfig, labelCredentialType, labelOutcome)
	m.exchanges = counter("pure1_exchanges_total",
		"Token exchanges with Pure1 (each may be several HTTP attempts; concurrent readers share one) by config and outcome: "+
			"ok, rejected (Pure1 refused the JWT: check app_id and the key), unavailable (unreachable, 429 or 5xx after retries), "+
			"bad_response (200 without a usable token).",
		labelConfig, labelOutcome)
	m.exchangeRetries = counter("pure1_exchange_retries_total",
		"HTTP attempts of token exchanges beyond the first of each exchange, by config.",
		labelConfig)
	m.exchangeDuration = histogram("pure1_exchange_duration_seconds",
		"Time a token exchange with Pure1 took, retries and their waits included, by config.",
		exchangeBuckets, labelConfig)
	m.readersShared = counter("pure1_readers_shared_exchange_total",
		"Credential reads that joined an exchange already in flight for their role instead of starting one, by role.",
		labelRole)
	m.readersReused = counter("pure1_readers_reused_token_total",
		"Credential reads served a still-valid shared access token (reuse_access_token roles) without an exchange, by role.",
		labelRole)
	m.staticRefreshes = counter("pure1_static_refreshes_total",
		"Refreshes of static roles' tokens by role, config and outcome: ok, rejected, unavailable, bad_response, error "+
			"(not Pure1's answer, such as storage).",
		labelRole, labelConfig, labelOutcome)
	m.rateLimitRemaining = gauge("pure1_ratelimit_remaining",
		"X-RateLimit-Remaining of the last answer from Pure1's token endpoint that carried it, by config: "+
			"token requests left in the organisation's current window. Absent until Pure1 sent one.",
		labelConfig)
	m.retryAfter = gauge("pure1_retry_after_seconds",
		"Retry-After of the last answer from Pure1's token endpoint, by config; 0 when that answer asked for no wait.",
		labelConfig)

	m.clientsDeleted = counter("pure1_array_clients_deleted_total",
		"API clients Vault made that the delete list removed from an array, by config and reason: retired (rotated out, its credentials expired), "+
			"registration (half-made by a write or rotation that failed or crashed), config_deleted.",
		labelConfig, labelReason)
	m.deleteFailures = counter("pure1_array_client_delete_failures_total",
		"Attempts to delete an API client on the delete list that failed (retried with growing backoff), by config.",
		labelConfig)
	m.rotationFailures = counter("pure1_scheduled_rotation_failures_total",
		"Scheduled rotations of managed array configs that failed (retried with growing backoff; the active client keeps working), by config.",
		labelConfig)

	m.usersCreated = counter("pure1_array_users_created_total",
		"Array users made for leases of api_token roles (and static api_token roles), by config and outcome: ok, rejected (the array refused: the user limit, rights), unavailable, error.",
		labelConfig, labelOutcome)
	m.usersRevoked = counter("pure1_array_users_revoked_total",
		"Array users deleted because their lease was revoked or ended, by config.",
		labelConfig)
	m.userRevokeFailures = counter("pure1_array_user_revoke_failures_total",
		"Lease revokes whose user the array did not delete (Vault retries the revoke), by config.",
		labelConfig)
	m.usersTidied = counter("pure1_array_users_tidied_total",
		"Array users with a Vault prefix that no live lease named, deleted by tidy, by config.",
		labelConfig)
	m.adminLogins = counter("pure1_array_admin_logins_total",
		"Admin sessions opened at arrays for making and deleting users (one is kept per config and reused), by config.",
		labelConfig)

	m.staticExpiry = stored("pure1_static_token_expiry_seconds",
		"Seconds until the stored token of a static role expires (negative once expired), by role. From storage at scrape time.",
		labelRole)
	m.staticLastRefresh = stored("pure1_static_last_refresh_timestamp_seconds",
		"Unix time of the last successful refresh of a static role's token, by role. From storage at scrape time.",
		labelRole)
	m.staticRotationPeriod = stored("pure1_static_rotation_period_seconds",
		"rotation_period of a static role: how often its token is refreshed, by role.",
		labelRole)
	m.keyAge = stored("pure1_key_age_seconds",
		"Age of a config's active key, by config; absent when its creation time is unknown (keys written before it was recorded).",
		labelConfig)
	m.keyMaxAge = stored("pure1_key_max_age_seconds",
		"max_key_age of a config, by config; absent when it has none.",
		labelConfig)
	m.keyRotationPending = stored("pure1_key_rotation_pending",
		"1 when a config has a pending key waiting to be promoted (a rotation under way), else 0, by config.",
		labelConfig)
	m.pendingDeletions = stored("pure1_array_clients_pending_deletion",
		"API clients on the delete list (waiting for their retirement time, or for the array to take the delete), by config. From storage at scrape time.",
		labelConfig)
	return m
}

// observeCredential counts one read of path (metricsPathCreds,
// metricsPathStaticCreds) of an existing role, with outcomeOK,
// outcomeRefused or outcomeFailed. Reads of unknown roles are not counted:
// their names are whatever a caller typed.
func (m *metrics) observeCredential(path, role, config, credentialType, outcome string) {
	m.credentialsIssued.WithLabelValues(path, role, config, credentialType, outcome).Inc()
}

// exchangeOutcomes are the outcomes an exchange can have.
var exchangeOutcomes = []string{outcomeOK, outcomeRejected, outcomeUnavailable, outcomeBadResponse}

// refreshOutcomes are the outcomes a static refresh can have.
var refreshOutcomes = []string{outcomeOK, outcomeRejected, outcomeUnavailable, outcomeBadResponse, outcomeError}

// observeExchange counts one exchange (all its attempts) and its duration.
func (m *metrics) observeExchange(config string, took time.Duration, err error) {
	// Every outcome of the config exists from its first exchange on, at 0:
	// increase() and rate() cannot see the first failure of a series that
	// appears with it, and alerts are written with them.
	for _, o := range exchangeOutcomes {
		m.exchanges.WithLabelValues(config, o)
	}
	m.exchanges.WithLabelValues(config, exchangeOutcome(err)).Inc()
	m.exchangeDuration.WithLabelValues(config).Observe(took.Seconds())
}

// exchangeAttemptObserver is the pure1.AttemptObserver for one exchange of
// config: it counts the retries and keeps what Pure1 said of its limits.
func (m *metrics) exchangeAttemptObserver(config string) pure1.AttemptObserver {
	attempts := 0 // an exchange's attempts run one after another
	return func(a pure1.Attempt) {
		attempts++
		if attempts > 1 {
			m.exchangeRetries.WithLabelValues(config).Inc()
		}
		if a.StatusCode == 0 {
			return // no answer, so Pure1 said nothing
		}
		m.retryAfter.WithLabelValues(config).Set(a.RetryAfter.Seconds())
		if a.HasRateLimit {
			m.rateLimitRemaining.WithLabelValues(config).Set(a.RateLimitRemaining)
		}
	}
}

// observeSharedExchange counts a reader of role that joined an exchange in
// flight.
func (m *metrics) observeSharedExchange(role string) {
	m.readersShared.WithLabelValues(role).Inc()
}

// observeReusedToken counts a reader of role served the shared token.
func (m *metrics) observeReusedToken(role string) {
	m.readersReused.WithLabelValues(role).Inc()
}

// observeStaticRefresh counts one refresh of a static role's token; err is
// the refresh's error (nil when the new token was stored).
func (m *metrics) observeStaticRefresh(role, config string, err error) {
	for _, o := range refreshOutcomes {
		m.staticRefreshes.WithLabelValues(role, config, o) // at 0, as for exchanges
	}
	m.staticRefreshes.WithLabelValues(role, config, exchangeOutcome(err)).Inc()
}

// forgetConfig drops every series of a deleted config, so that neither an
// alert nor the series count outlives it.
func (m *metrics) forgetConfig(config string) {
	l := prometheus.Labels{labelConfig: config}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.rateLimitRemaining, m.retryAfter, m.credentialsIssued, m.exchanges, m.exchangeRetries, m.exchangeDuration,
		m.staticRefreshes, m.deleteFailures, m.rotationFailures, m.usersCreated, m.usersRevoked, m.userRevokeFailures,
		m.usersTidied, m.adminLogins,
	} {
		v.DeletePartialMatch(l)
	}
	// clientsDeleted stays: the config's clients may still be on the list.
}

// forgetRole drops the series of a deleted role (or static role).
func (m *metrics) forgetRole(role string) {
	l := prometheus.Labels{labelRole: role}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.credentialsIssued, m.readersShared, m.readersReused, m.staticRefreshes,
	} {
		v.DeletePartialMatch(l)
	}
}

// observeUserIssue counts a user made for a lease, or the failure to.
func (m *metrics) observeUserIssue(config string, err error) {
	m.usersCreated.WithLabelValues(config, exchangeOutcome(err)).Inc()
}

// observeUserRevoke counts a revoked lease's user deleted, or not.
func (m *metrics) observeUserRevoke(config string, err error) {
	if err != nil {
		m.userRevokeFailures.WithLabelValues(config).Inc()
		return
	}
	m.usersRevoked.WithLabelValues(config).Inc()
}

// observeUsersTidied counts users tidy deleted.
func (m *metrics) observeUsersTidied(config string, n int) {
	m.usersTidied.WithLabelValues(config).Add(float64(n))
}

// observeAdminLogin counts an admin session opened for users.
func (m *metrics) observeAdminLogin(config string) {
	m.adminLogins.WithLabelValues(config).Inc()
}

// observeClientDeleted counts an API client the delete list removed.
func (m *metrics) observeClientDeleted(config, reason string) {
	m.clientsDeleted.WithLabelValues(config, reason).Inc()
}

// observeClientDeleteFailure counts a failed attempt of the delete list.
func (m *metrics) observeClientDeleteFailure(config string) {
	m.deleteFailures.WithLabelValues(config).Inc()
}

// observeRotationFailure counts a failed scheduled rotation.
func (m *metrics) observeRotationFailure(config string) {
	m.rotationFailures.WithLabelValues(config).Inc()
}

// exchangeOutcome classifies an exchange's (or a refresh's) error.
func exchangeOutcome(err error) string {
	switch {
	case err == nil:
		return outcomeOK
	case errors.Is(err, pure1.ErrBadResponse):
		return outcomeBadResponse
	case errors.Is(err, pure1.ErrRejected):
		return outcomeRejected
	case errors.Is(err, pure1.ErrUnavailable):
		return outcomeUnavailable
	}
	return outcomeError
}

// staticTokenState is what a scrape reports of one static role.
type staticTokenState struct {
	Role           string
	ExpiresAt      time.Time // of the stored token; zero when none is stored yet
	LastRefresh    time.Time // of the last successful refresh; zero when none
	RotationPeriod time.Duration
}

// keyState is what a scrape reports of one config's keys.
type keyState struct {
	Config          string
	CreatedAt       time.Time     // of the active key; zero when unknown
	MaxAge          time.Duration // max_key_age; 0 when none
	RotationPending bool
}

// storedState is what storage holds, as read for one scrape.
type storedState struct {
	now    time.Time
	static []staticTokenState
	keys   []keyState
	// pending counts the delete list's entries by config.
	pending map[string]int
}

// gather returns every series: the counters and gauges this process keeps,
// and the gauges of st.
func (m *metrics) gather(st storedState) ([]*dto.MetricFamily, error) {
	// A registry per scrape holds st, so concurrent scrapes never see each
	// other's state half-written.
	scrape := prometheus.NewPedanticRegistry()
	if err := scrape.Register(&storedStateCollector{m: m, st: st}); err != nil {
		return nil, err
	}
	return prometheus.Gatherers{m.registry, scrape}.Gather()
}

// storedStateCollector exports one scrape's storedState.
type storedStateCollector struct {
	m  *metrics
	st storedState
}

func (c *storedStateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.m.staticExpiry, c.m.staticLastRefresh, c.m.staticRotationPeriod, c.m.keyAge, c.m.keyMaxAge, c.m.keyRotationPending, c.m.pendingDeletions} {
		ch <- d
	}
}

func (c *storedStateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, label)
	}
	for _, s := range c.st.static {
		if !s.ExpiresAt.IsZero() {
			gauge(c.m.staticExpiry, s.ExpiresAt.Sub(c.st.now).Seconds(), s.Role)
		}
		if !s.LastRefresh.IsZero() {
			gauge(c.m.staticLastRefresh, float64(s.LastRefresh.UnixNano())/1e9, s.Role)
		}
		if s.RotationPeriod > 0 {
			gauge(c.m.staticRotationPeriod, s.RotationPeriod.Seconds(), s.Role)
		}
	}
	for _, k := range c.st.keys {
		if !k.CreatedAt.IsZero() {
			gauge(c.m.keyAge, c.st.now.Sub(k.CreatedAt).Seconds(), k.Config)
		}
		if k.MaxAge > 0 {
			gauge(c.m.keyMaxAge, k.MaxAge.Seconds(), k.Config)
		}
		pending := 0.0
		if k.RotationPending {
			pending = 1
		}
		gauge(c.m.keyRotationPending, pending, k.Config)
	}
	for config, n := range c.st.pending {
		gauge(c.m.pendingDeletions, float64(n), config)
	}
}
