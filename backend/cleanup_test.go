package backend

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// errFakeDropped is an answer lost on the way back: the array may have done
// the step (create-applied, enable-applied, delete-applied) or not.
var errFakeDropped = fmt.Errorf("%w: connection reset by peer", pure1.ErrUnavailable)

// drain runs the delete list as the background loop does, after moving the
// clock past every retirement, backoff and journal grace.
func (e *testEnv) drain(t testing.TB, skip time.Duration) {
	t.Helper()
	e.clock.Add(skip)
	e.b.drainCleanup(e.ctx, e.storage, "")
}

// cleanupKeys lists the delete list's storage keys.
func (e *testEnv) cleanupKeys(t testing.TB) []string {
	t.Helper()
	keys, err := e.inmem.List(e.ctx, cleanupStoragePrefix)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	return keys
}

// assertArrayClean is the invariant every fault must leave once the loop
// has run: each config names exactly one enabled client on the array, no
// other client of Vault's is there, no admin session is open, and the delete
// list is empty.
func assertArrayClean(t *testing.T, env *testEnv, fa *fakeArray, configs ...string) {
	t.Helper()
	var want []string
	for _, name := range configs {
		e := env.storedConfig(name)
		if e.Managed == nil || e.ClientID == "" {
			t.Errorf("config %q names no managed client: %+v", name, e.Managed)
			continue
		}
		want = append(want, e.Managed.Name)
		fa.mu.Lock()
		c := fa.clients[e.Managed.Name]
		fa.mu.Unlock()
		if c == nil || !c.Enabled || c.ID != e.ClientID {
			t.Errorf("config %q names client %q (%s), which the array has as %+v", name, e.Managed.Name, e.ClientID, c)
		}
	}
	sort.Strings(want)
	if got := fa.clientNames(); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("clients on the array = %v, want exactly %v", got, want)
	}
	if n := fa.openSessions(); n != 0 {
		t.Errorf("%d admin sessions left open", n)
	}
	if keys := env.cleanupKeys(t); len(keys) != 0 {
		t.Errorf("delete list not empty: %v", keys)
	}
}

// Every fault at every admin step of a registration, a rotation and a
// delete leaves, once the loop ran, exactly the client storage names.
func TestArrayFaultsLeaveNothingBehind(t *testing.T) {
	type fault struct {
		step string
		err  error
	}
	steps := []fault{
		{"login", errFakeStep}, {"login", errFakeDropped},
		{"create", errFakeStep}, {"create", errFakeDropped}, {"create-applied", errFakeDropped},
		{"get", errFakeDropped},
		{"enable", errFakeStep}, {"enable", errFakeDropped}, {"enable-applied", errFakeDropped},
		{"verify-new", errFakeStep},
		{"delete", errFakeDropped}, {"delete-applied", errFakeDropped},
		{"logout", errFakeDropped},
	}
	for _, f := range steps {
		name := f.step + "/" + map[bool]string{true: "dropped", false: "refused"}[errors.Is(f.err, pure1.ErrUnavailable)]
		t.Run("register/"+name, func(t *testing.T) {
			env, fa := newArrayEnv(t, envOptions{})
			fa.setFail(f.step, f.err)
			env.write("config/fa", managedArrayConfig(nil)) // may fail: that is the fault
			fa.setFail(f.step, nil)
			env.drain(t, registrationGrace+time.Minute)
			if e, _ := readConfigEntry(env.ctx, env.inmem, "fa"); e == nil {
				// Nothing stored: writing again must work, as the first try would have.
				env.mustWrite("config/fa", managedArrayConfig(nil))
			}
			assertArrayClean(t, env, fa, "fa")
		})
		t.Run("rotate/"+name, func(t *testing.T) {
			env, fa := newArrayEnv(t, envOptions{})
			env.mustWrite("config/fa", managedArrayConfig(nil))
			env.clock.Add(time.Minute)
			fa.setFail(f.step, f.err)
			env.write("config/fa/rotate", map[string]interface{}{fieldRetirePrevious: "now"})
			fa.setFail(f.step, nil)
			env.drain(t, registrationGrace+time.Minute)
			env.drain(t, cleanupMaxRetry) // a delete that failed is retried
			assertArrayClean(t, env, fa, "fa")
		})
		t.Run("delete/"+name, func(t *testing.T) {
			env, fa := newArrayEnv(t, envOptions{})
			env.mustWrite("config/fa", managedArrayConfig(nil))
			env.clock.Add(time.Minute)
			env.mustWrite("config/fa/rotate", map[string]interface{}{}) // a previous client waiting to retire, too
			fa.setFail(f.step, f.err)
			env.mustDelete("config/fa")
			fa.setFail(f.step, nil)
			env.drain(t, cleanupMaxRetry)
			assertArrayClean(t, env, fa)
		})
	}
}

// The old client keeps working until the longest credential it issued has
// expired; then the loop deletes it and the config says so.
func TestArrayRotationRetiresPreviousLater(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(map[string]interface{}{fieldAccessTokenTTL: "2h"}))
	env.mustWrite("roles/jwt", map[string]interface{}{fieldConfig: "fa", fieldUsername: "pureuser", fieldCredentialType: credentialJWT, "ttl": "3h"})
	env.clock.Add(time.Minute)
	rotatedAt := env.clock.Now()
	resp := env.mustWrite("config/fa/rotate", map[string]interface{}{})
	retireAt := rotatedAt.Add(3*time.Hour + time.Minute) // the JWT role outlives the 2h tokens
	if got := resp.Data[fieldPreviousClientDeleteAt]; got != formatTime(retireAt) {
		t.Errorf("previous_api_client_delete_at = %v, want %s", got, formatTime(retireAt))
	}
	if !warningsContain(resp, `stays enabled until`) {
		t.Errorf("the rotation does not say when the old client goes: %v", resp.Warnings)
	}
	if got := fa.clientNames(); len(got) != 2 {
		t.Fatalf("clients right after the rotation = %v, want the old one still there", got)
	}
	pending := env.mustRead("config/fa").Data[fieldPendingDeletions].([]map[string]interface{})
	if len(pending) != 1 || pending[0]["api_client"] != "vault-fa" || pending[0]["reason"] != cleanupRetired {
		t.Errorf("pending_deletions = %v", pending)
	}
	env.drain(t, 3*time.Hour) // not yet
	if got := fa.clientNames(); len(got) != 2 {
		t.Fatalf("clients before the retirement time = %v", got)
	}
	env.drain(t, 2*time.Minute)
	if got := fa.clientNames(); len(got) != 1 || got[0] == "vault-fa" {
		t.Fatalf("clients after the retirement time = %v, want only the new one", got)
	}
	cfg := env.mustRead("config/fa").Data
	if cfg[fieldPreviousClientDeleted] != true || cfg[fieldPendingDeletions] != nil {
		t.Errorf("after the retirement: previous_api_client_deleted=%v pending_deletions=%v", cfg[fieldPreviousClientDeleted], cfg[fieldPendingDeletions])
	}
	if v := counterValue(t, env, "pure1_array_clients_deleted_total", "fa", cleanupRetired); v != 1 {
		t.Errorf("pure1_array_clients_deleted_total{reason=retired} = %v, want 1", v)
	}
	assertArrayClean(t, env, fa, "fa")
}

// retire_previous=now rotates and cuts every earlier client off at once,
// and says what that breaks.
func TestArrayRetirePreviousNow(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(nil))
	env.clock.Add(time.Minute)
	resp := env.mustWrite("config/fa/rotate", map[string]interface{}{fieldRetirePrevious: "now"})
	if !warningsContain(resp, "stop working at the array now") || !warningsContain(resp, "they are deleted on the array") {
		t.Errorf("warnings %v", resp.Warnings)
	}
	assertArrayClean(t, env, fa, "fa")

	// Two rotations leave two earlier clients waiting; one with
	// retire_previous=now cuts both, and a delete the array refuses waits
	// on the list.
	for i := 0; i < 2; i++ {
		env.clock.Add(time.Minute)
		env.mustWrite("config/fa/rotate", map[string]interface{}{})
	}
	if got := len(fa.clientNames()); got != 3 {
		t.Fatalf("%d clients after two plain rotations, want 3", got)
	}
	fa.setFail("delete", errFakeDropped)
	env.clock.Add(time.Minute)
	resp = env.mustWrite("config/fa/rotate", map[string]interface{}{fieldRetirePrevious: "now"})
	if !warningsContain(resp, "did not take every delete yet") {
		t.Errorf("a retirement the array refused does not say so: %v", resp.Warnings)
	}
	p := env.mustRead("config/fa").Data[fieldPendingDeletions].([]map[string]interface{})
	if len(p) != 3 {
		t.Fatalf("pending_deletions after failed deletes = %v, want the three earlier clients", p)
	}
	for _, d := range p {
		if d["attempts"] != 1 || !strings.Contains(fmt.Sprint(d["last_error"]), "connection reset") || d["reason"] != cleanupRetired {
			t.Errorf("pending deletion %v", d)
		}
	}
	fa.setFail("delete", nil)
	env.drain(t, cleanupFirstRetry)
	assertArrayClean(t, env, fa, "fa")
	if resp, _ := env.write("config/fa/rotate", map[string]interface{}{fieldRetirePrevious: "later"}); resp == nil || !resp.IsError() {
		t.Errorf("retire_previous=later was not refused")
	}
}

// A failed delete is retried with growing backoff, counted, and shown.
func TestArrayDeleteBackoff(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(nil))
	fa.setFail("login", errFakeDropped)
	env.mustDelete("config/fa")
	var waits []time.Duration
	for i := 0; i < 4; i++ {
		c, err := readEntry[cleanupEntry](env.ctx, env.inmem, cleanupStoragePrefix+"fa:vault-fa", "entry")
		if err != nil || c == nil {
			t.Fatalf("entry %d: %v %v", i, c, err)
		}
		waits = append(waits, c.NextTry.Sub(env.clock.Now()))
		env.drain(t, c.NextTry.Sub(env.clock.Now()))
	}
	want := []time.Duration{cleanupFirstRetry, 2 * cleanupFirstRetry, 4 * cleanupFirstRetry, 8 * cleanupFirstRetry}
	if !reflect.DeepEqual(waits, want) {
		t.Errorf("backoff = %v, want %v", waits, want)
	}
	if v := counterValue(t, env, "pure1_array_client_delete_failures_total", "fa"); v != 5 {
		t.Errorf("pure1_array_client_delete_failures_total = %v, want 5 (the inline try and four from the loop)", v)
	}
	fa.setFail("login", nil)
	env.drain(t, time.Hour)
	assertArrayClean(t, env, fa)
}

// A store that reported an error although it was applied keeps the client
// storage names; one that was not applied leaves nothing.
func TestArrayAmbiguousStore(t *testing.T) {
	for _, applied := range []bool{true, false} {
		t.Run(fmt.Sprintf("applied=%v", applied), func(t *testing.T) {
			env, fa := newArrayEnv(t, envOptions{})
			inner := env.storage.Storage
			env.storage.Storage = &failConfigPut{Storage: inner, apply: applied}
			if _, err := env.write("config/fa", managedArrayConfig(nil)); err == nil {
				t.Fatal("the write did not report the storage error")
			}
			env.storage.Storage = inner
			env.drain(t, registrationGrace+time.Minute)
			if applied {
				assertArrayClean(t, env, fa, "fa")
				if got := dataString(t, env.mustRead("config/fa"), fieldAPIClientName); got != "vault-fa" {
					t.Errorf("the applied config names %q", got)
				}
				return
			}
			assertArrayClean(t, env, fa)
		})
	}
}

// failConfigPut fails the first Put of a config/ entry, after storing it
// when apply is set (a Raft apply that timed out but committed).
type failConfigPut struct {
	logical.Storage
	apply bool
	done  bool
}

func (f *failConfigPut) Put(ctx context.Context, e *logical.StorageEntry) error {
	if f.done || !strings.HasPrefix(e.Key, configStoragePrefix) {
		return f.Storage.Put(ctx, e)
	}
	f.done = true
	if f.apply {
		if err := f.Storage.Put(ctx, e); err != nil {
			return err
		}
	}
	return fmt.Errorf("put %s: %w", e.Key, errInjected)
}

// registerUnstored does what a write of config fa does up to the store:
// client vault-fa registered, under its journal entry.
func registerUnstored(t *testing.T, env *testEnv) {
	t.Helper()
	e := configEntry{Kind: "flasharray", ArrayURL: testArrayURL, Username: "pureuser",
		Managed: &managedClient{AdminAPIToken: fakeAdminToken, BaseName: "vault-fa", MaxRole: "readonly"}, Issuer: "vault-fa"}
	key, err := env.b.generateKey(2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.b.registerManaged(env.ctx, env.storage, "fa", &e, key, "vault-fa"); err != nil {
		t.Fatal(err)
	}
}

// A plugin that dies between creating a client and storing it leaves a
// journal entry: the restarted plugin's loop deletes the client at once (its
// registration is gone with the process), and a new write before the loop
// takes the name over from the leftover.
func TestArrayCrashBetweenRegisterAndStore(t *testing.T) {
	for _, retryFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("write again before the loop=%v", retryFirst), func(t *testing.T) {
			env, fa := newArrayEnv(t, envOptions{})
			w := managedArrayConfig(nil)
			registerUnstored(t, env) // and then nothing: the crash
			// While the registration runs in this process, its loop leaves it.
			env.drain(t, 0)
			if got := fa.clientNames(); !reflect.DeepEqual(got, []string{"vault-fa"}) {
				t.Fatalf("clients while the registration runs = %v", got)
			}
			// The restarted plugin: a new backend on the same storage.
			env2 := env.restart(t, fa)
			if retryFirst {
				env2.mustWrite("config/fa", w)
			} else {
				env2.drain(t, 0)
				if got := fa.clientNames(); len(got) != 0 {
					t.Fatalf("the orphan outlived the restart's first loop: %v", got)
				}
				env2.mustWrite("config/fa", w)
			}
			env2.drain(t, 0)
			assertArrayClean(t, env2, fa, "fa")
		})
	}
}

// A journal entry written after this process started by a registration it
// does not run (another node's, before a failover) waits out the grace.
func TestArrayForeignJournalWaitsGrace(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	env.clock.Add(time.Minute)
	registerUnstored(t, env)
	env.b.cleanup.registering.Clear() // as if another node ran it
	env.drain(t, registrationGrace-time.Second)
	if got := fa.clientNames(); len(got) != 1 {
		t.Fatalf("deleted within the grace: %v", got)
	}
	env.drain(t, time.Second)
	assertArrayClean(t, env, fa)
}

// tidy tries the config's entries now, backoff or not, even of a deleted
// config, and shows what still waits.
func TestArrayTidy(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(nil))
	fa.setFail("delete", errFakeDropped)
	env.mustDelete("config/fa")
	resp := env.mustWrite("config/fa/tidy", nil)
	if p := resp.Data[fieldPendingDeletions].([]map[string]interface{}); len(p) != 1 || p[0]["attempts"] != 2 {
		t.Fatalf("pending after a failed tidy = %v", p)
	}
	fa.setFail("delete", nil)
	resp = env.mustWrite("config/fa/tidy", nil)
	if p := resp.Data[fieldPendingDeletions].([]map[string]interface{}); len(p) != 0 {
		t.Fatalf("pending after tidy = %v", p)
	}
	assertArrayClean(t, env, fa)
}

// A name held by a client Vault did not make is never deleted.
func TestArrayNameTakenByStranger(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	fa.register("vault-fa", "someone", keyB())
	resp, err := env.write("config/fa", managedArrayConfig(nil))
	if msg := errorText(resp, err); !strings.Contains(msg, "taken by a client Vault did not make") {
		t.Errorf("the refusal = %q", msg)
	}
	env.drain(t, registrationGrace+time.Minute)
	if got := fa.clientNames(); !reflect.DeepEqual(got, []string{"vault-fa"}) {
		t.Errorf("the stranger's client = %v, want it untouched", got)
	}
	if keys := env.cleanupKeys(t); len(keys) != 0 {
		t.Errorf("delete list = %v", keys)
	}
}

// A managed config refuses client_id, key_id and issuer: Vault proved the
// client it stores; an unproven one would break every read, and
// client_id="" would register anew and forget the live client.
func TestArrayManagedRefusesClientFields(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fa", managedArrayConfig(nil))
	before := env.snapshot()
	for _, d := range []map[string]interface{}{
		{fieldClientID: ""}, {fieldClientID: "x"}, {fieldKeyID: "k"}, {fieldIssuer: "x"},
	} {
		resp, err := env.write("config/fa", d)
		if msg := errorText(resp, err); !strings.Contains(msg, "Vault's to set") {
			t.Errorf("write %v: %q", d, msg)
		}
	}
	if diff := diffSnapshots(before, env.snapshot()); diff != "" {
		t.Errorf("a refused write changed storage:\n%s", diff)
	}
	assertArrayClean(t, env, fa, "fa")
}

// counterValue is a series of the mount's metrics: by config, and with a
// reason when given.
func counterValue(t *testing.T, env *testEnv, name, config string, reason ...string) float64 {
	t.Helper()
	labels := map[string]string{labelConfig: config}
	if len(reason) > 0 {
		labels[labelReason] = reason[0]
	}
	v, _ := sample(env.scrape(), name, labels)
	return v
}

// restart is the plugin started again after a crash: a new backend on the
// same storage, clock and array.
func (e *testEnv) restart(t *testing.T, fa *fakeArray) *testEnv {
	t.Helper()
	env2 := newTestEnvWith(t, envOptions{clock: e.clock}, func(o *Options) { o.DialArray = fa.dial; o.Hosts = e.b.hosts })
	env2.inmem = e.inmem
	env2.storage = &flakyStorage{Storage: e.inmem}
	env2.b.generateKey = e.b.generateKey
	return env2
}
