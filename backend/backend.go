// Package backend is the Pure1 secrets engine: a Vault logical backend that
// keeps Pure1 application keys and issues Pure1 JWTs and access tokens as
// leases.
package backend

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"
)

// Version is the plugin's running version, set at build time with
// -ldflags "-X .../backend.Version=vX.Y.Z". Vault shows it in `vault plugin
// list` and checks it against the version the plugin is registered with.
var Version = "v0.0.0-dev"

const backendHelp = `
The Pure1 secrets engine issues credentials for the Pure Storage Pure1 REST API.

It keeps a Pure1 application's RSA private key (imported, or generated inside
Vault so that it never exists anywhere else) under config/<name>. Roles under
roles/<name> choose a config, whether to return the signed JWT itself or to
exchange it with Pure1 for an access token, and the lease TTLs. Reading
creds/<role> returns the credential as a lease that ends no later than the
credential does.
`

// Factory is the logical.Factory Vault calls to create a mount of the engine.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	hosts, err := allowedHosts()
	if err != nil {
		return nil, fmt.Errorf("%w: fix it with vault plugin register -env and reload the plugin", err)
	}
	b := newBackend(Options{Hosts: hosts})
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

// allowedHosts reads $PURE1_ALLOWED_TOKEN_HOSTS once per plugin process:
// the environment is the registrar's (vault plugin register -env, a sudo
// operation), fixed when Vault starts the plugin; changing it takes a new
// registration and a reload, which starts a new process.
var allowedHosts = sync.OnceValues(pure1.HostPolicyFromEnv)

// Options are what tests replace: the clock, the Pure1 client and the hosts
// a JWT may be sent to.
type Options struct {
	Exchanger pure1.Exchanger
	Now       func() time.Time
	// Hosts is checked where token_url is written and by the default
	// exchanger before every request. Zero: Pure1 only (loopback needs
	// PURE1_ALLOWED_TOKEN_HOSTS=loopback).
	Hosts pure1.HostPolicy
	// DialArray builds the client of one array (FlashArray or FlashBlade
	// configs); nil builds purearray's HTTPS client.
	DialArray func(purearray.Options) (purearray.Array, error)
}

type backend struct {
	*framework.Backend

	exchanger pure1.Exchanger
	hosts     pure1.HostPolicy
	now       func() time.Time
	// started is when this plugin process set the mount up: a registration
	// journal from before it belongs to a process that is gone.
	started time.Time

	// ctx lives as long as the mount: Clean cancels it, which ends every
	// exchange in flight and whatever else runs in the background.
	ctx    context.Context
	cancel context.CancelFunc

	// writeLock serialises writes and deletes of configs and roles, so a
	// read-modify-write cannot interleave with another and a role cannot be
	// created for a config that is being deleted.
	writeLock sync.Mutex

	// cacheLock guards configs, roles and gen. Parsed keys and roles are kept
	// in memory so that a creds read decodes, decrypts and parses nothing.
	cacheLock sync.RWMutex
	configs   map[string]*config
	roles     map[string]*roleEntry
	// Static roles and their stored tokens, as read from storage.
	staticRoles  map[string]*staticRoleEntry
	staticTokens map[string]*staticToken
	// gen counts invalidations; a cache fill that raced one is dropped, so a
	// slow reader cannot put back what a write just replaced.
	gen uint64

	tokens    *tokenCache
	flights   *flightGroup
	checks    *checkCache
	refresher *staticRefresher
	rotations rotationBackoff // scheduled rotations that failed (rotate_schedule.go)
	metrics   *metrics

	dialArray func(purearray.Options) (purearray.Array, error)
	// arrays are the clients of the arrays configs name, by config, so
	// that connections are kept alive between exchanges (kind_array.go).
	arraysLock sync.Mutex
	arrays     map[string]arrayConn
	// cleanup is the delete list of array API clients (cleanup.go).
	cleanup cleanupList
	// sessions are the kept admin sessions of configs whose roles make
	// array users; userSlots bound how many are made at once per config,
	// and userTidied says when each config's users were last tidied
	// (array_users.go).
	sessions      adminSessions
	userSlotsLock sync.Mutex
	userSlots     map[string]chan struct{}
	userTidyLock  sync.Mutex
	userTidied    map[string]time.Time

	// parseKey and generateKey are pure1's, replaced in tests to make key
	// work slow on purpose.
	parseKey    func(pemData, password []byte) (*pure1.Key, error)
	generateKey func(bits int) (*pure1.Key, error)
}

func newBackend(opts Options) *backend {
	ctx, cancel := context.WithCancel(context.Background())
	b := &backend{
		exchanger: opts.Exchanger,
		hosts:     opts.Hosts,
		dialArray: opts.DialArray,
		arrays:    make(map[string]arrayConn),

		userSlots:  make(map[string]chan struct{}),
		userTidied: make(map[string]time.Time),
		now:        opts.Now,
		ctx:        ctx,
		cancel:     cancel,
		configs:    make(map[string]*config),
		roles:      make(map[string]*roleEntry),
		tokens:     newTokenCache(),
		flights:    newFlightGroup(ctx),
		checks:     newCheckCache(),
		refresher:  newStaticRefresher(),
		metrics:    newMetrics(),

		staticRoles:  make(map[string]*staticRoleEntry),
		staticTokens: make(map[string]*staticToken),

		parseKey:    pure1.ParsePrivateKey,
		generateKey: pure1.GenerateKey,
	}
	b.flights.joined = func(key string) {
		if role := flightRole(key); role != "" { // config checks share flights too, under no role
			b.metrics.observeSharedExchange(role)
		}
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.started = b.now()
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			// The private keys live under config/, live access tokens under
			// static-tokens/ and admin tokens also under array-cleanup/:
			// seal-wrap them where the seal supports it (Enterprise HSM/KMS
			// seals).
			SealWrapStorage: []string{configStoragePrefix, staticTokenStoragePrefix, cleanupStoragePrefix},
		},
		Paths: framework.PathAppend(
			pathConfig(b),
			pathRotate(b),
			pathCheck(b),
			pathTidy(b),
			pathRoles(b),
			pathCreds(b),
			pathStaticRoles(b),
			pathStaticCreds(b),
			pathMetrics(b),
		),
		Secrets:        []*framework.Secret{secretCredential(b), secretArrayUser(b)},
		Invalidate:     b.invalidate,
		InitializeFunc: b.initialize,
		Clean:          b.clean,
		RunningVersion: Version,
	}
	return b
}

// Setup builds the Pure1 client once Vault's logger is available.
func (b *backend) Setup(ctx context.Context, conf *logical.BackendConfig) error {
	if conf.System != nil {
		c := *conf
		c.System = newCachingSystemView(conf.System)
		conf = &c
	}
	if err := b.Backend.Setup(ctx, conf); err != nil {
		return err
	}
	if b.exchanger == nil {
		b.exchanger = pure1.NewHTTPExchanger(pure1.HTTPExchangerOptions{Logger: b.Logger().Named("pure1"), Hosts: b.hosts})
	}
	if b.dialArray == nil {
		logger := b.Logger().Named("array")
		b.dialArray = func(o purearray.Options) (purearray.Array, error) {
			o.Logger = logger
			return purearray.New(o)
		}
	}
	return nil
}

// clean runs when Vault unmounts the engine or reloads the plugin: nothing of
// this mount may live on. Each step is one line, so background work added
// later is stopped here too.
func (b *backend) clean(context.Context) {
	b.cancel() // exchanges in flight and their retries end now
	b.stopStaticRefresher()
	if c, ok := b.exchanger.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	b.closeArrays()
	b.closeSessions()
}

// invalidate runs on performance standbys and replicas when another node
// changed storage: drop what was cached for that key.
func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case strings.HasPrefix(key, configStoragePrefix):
		b.dropConfig(strings.TrimPrefix(key, configStoragePrefix))
	case strings.HasPrefix(key, roleStoragePrefix):
		b.dropRole(strings.TrimPrefix(key, roleStoragePrefix))
	case strings.HasPrefix(key, staticRoleStoragePrefix):
		b.dropStatic(strings.TrimPrefix(key, staticRoleStoragePrefix))
	case strings.HasPrefix(key, staticTokenStoragePrefix):
		b.dropStatic(strings.TrimPrefix(key, staticTokenStoragePrefix))
	case strings.HasPrefix(key, cleanupStoragePrefix):
		b.cleanup.drop()
	}
}

func (b *backend) dropConfig(name string) {
	b.cacheLock.Lock()
	delete(b.configs, name)
	b.gen++
	b.cacheLock.Unlock()
	b.tokens.dropConfig(name)
	b.checks.drop(name)
	b.dropArray(name)
	// The kept admin session stays: withSession logs in again when the
	// array, CA or admin token it was opened with changed.
	// Static tokens of this config are due at once under its new identity.
	b.wakeStaticRefresher()
}

// dropStatic forgets what is cached of a static role and its token.
func (b *backend) dropStatic(name string) {
	b.cacheLock.Lock()
	delete(b.staticRoles, name)
	delete(b.staticTokens, name)
	b.gen++
	b.cacheLock.Unlock()
}

func (b *backend) dropRole(name string) {
	b.cacheLock.Lock()
	delete(b.roles, name)
	b.gen++
	b.cacheLock.Unlock()
	b.tokens.dropRole(name)
}

// cachedLoad returns m[name], or loads it and caches what it found. A load
// that raced an invalidation (gen moved) is returned but not cached, so a slow
// reader cannot put back what a write just replaced. Nothing found is not
// cached either.
func cachedLoad[T any](b *backend, m map[string]*T, name string, load func() (*T, error)) (*T, error) {
	b.cacheLock.RLock()
	v, ok := m[name]
	gen := b.gen
	b.cacheLock.RUnlock()
	if ok {
		return v, nil
	}
	v, err := load()
	if err != nil || v == nil {
		return nil, err
	}
	b.cacheLock.Lock()
	if b.gen == gen {
		m[name] = v
	}
	b.cacheLock.Unlock()
	return v, nil
}

// storageLayout is the version of what this build stores: every entry
// carries it (layout 1, entries of v0.1.0, carry none). A build refuses an
// entry of a newer layout rather than misread it, and new fields get zero
// values that keep older entries valid, so an upgrade reads every byte an
// older build wrote.
const storageLayout = 2

// layoutVersion is embedded in every stored entry.
type layoutVersion struct {
	Layout int `json:"layout,omitempty"`
}

func (l *layoutVersion) setLayout(v int) { l.Layout = v }
func (l *layoutVersion) layout() int     { return l.Layout }

// versioned is what putEntry stores: an entry that embeds layoutVersion.
type versioned interface{ setLayout(int) }

// errNewerLayout: storage holds an entry a newer build of the plugin wrote.
var errNewerLayout = errors.New("written by a newer version of this plugin")

// readEntry decodes the JSON entry at key; nil when there is none. what
// names the entry in errors, such as `role "x"`.
func readEntry[T any](ctx context.Context, s logical.Storage, key, what string) (*T, error) {
	raw, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if raw == nil {
		return nil, nil
	}
	var v T
	if err := raw.DecodeJSON(&v); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", what, err)
	}
	if l, ok := any(&v).(interface{ layout() int }); ok && l.layout() > storageLayout {
		return nil, fmt.Errorf("%s was %w (storage layout %d; this build, %s, reads up to %d): nothing was changed; "+
			"register and run that version again (vault plugin register -version=..., vault secrets tune -plugin-version=..., vault plugin reload)",
			what, errNewerLayout, l.layout(), Version, storageLayout)
	}
	return &v, nil
}

// putEntry stores v as JSON at key, marked with this build's layout; what
// names the entry in errors.
func putEntry(ctx context.Context, s logical.Storage, key, what string, v versioned) error {
	v.setLayout(storageLayout)
	ent, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", what, err)
	}
	if err := s.Put(ctx, ent); err != nil {
		return fmt.Errorf("storing %s: %w", what, err)
	}
	return nil
}

// rejectUnknownFields turns a typo such as privat_key into an error instead of
// a silently ignored parameter.
func rejectUnknownFields(req *logical.Request, d *framework.FieldData) error {
	var unknown []string
	for k := range req.Data {
		if _, ok := d.Schema[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	known := make([]string, 0, len(d.Schema))
	for k := range d.Schema {
		if k != "name" {
			known = append(known, k)
		}
	}
	sort.Strings(known)
	return fmt.Errorf("unknown field(s) %s: this path takes %s", strings.Join(unknown, ", "), strings.Join(known, ", "))
}

// checkLength keeps oversized values out of storage and memory.
func checkLength(field, value string, max int) error {
	if len(value) > max {
		return fmt.Errorf("%s is %d bytes, more than the %d allowed", field, len(value), max)
	}
	return nil
}

// nameRegex is framework.GenericNameRegex anchored, for names given in fields.
var nameRegex = regexp.MustCompile(`^\w(([\w-.]+)?\w)?$`)
