package backend

// The life of an API client Vault registered itself on an array (managed
// registration): made under a journal entry, verified, rotated, retired once
// its credentials have expired, and deleted through the delete list
// (cleanup.go). The array kinds' config writes and rotations call these; so
// does the scheduled rotation (rotate_schedule.go).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"
)

// undoTimeout bounds deleting a client registered for a write that failed,
// which runs even when the request that asked for it has ended.
const undoTimeout = 15 * time.Second

// registration is a client Vault registered and has not stored yet, with the
// journal entry that deletes it should the store never happen.
type registration struct {
	client  *purearray.APIClient
	journal *cleanupEntry
}

// registerManaged creates, enables and verifies a new API client named name
// for key, with the managed settings of e. A journal entry goes on the
// delete list first: a crash, a lost answer or a failed cleanup leaves an
// entry that deletes the client later, never an orphan on the array.
func (b *backend) registerManaged(ctx context.Context, s logical.Storage, config string, e *configEntry, key *pure1.Key, name string) (*registration, error) {
	arr, err := b.dialArrayOnce(e)
	if err != nil {
		return nil, err
	}
	defer closeIdle(arr)
	// Read before this registration's journal replaces an entry of the
	// same name: those are the keys of Vault's own leftovers.
	ours, err := b.vaultsFingerprints(ctx, s, config, name)
	if err != nil {
		return nil, err
	}
	now := b.now()
	journal := newCleanup(config, e, name, "", key.Fingerprint(), cleanupRegistration, now, now.Add(registrationGrace))
	b.cleanup.registering.Store(journal.storageKey(), true)
	if err := b.queueCleanup(ctx, s, journal); err != nil {
		b.cleanup.registering.Delete(journal.storageKey())
		return nil, err
	}
	var client *purearray.APIClient
	err = purearray.WithAdmin(ctx, arr, e.Managed.AdminAPIToken, func(admin purearray.Admin) error {
		var err error
		client, err = purearray.Register(ctx, admin, purearray.Registration{
			Client: purearray.NewAPIClient{
				Name:           name,
				Issuer:         e.Issuer,
				PublicKeyPEM:   key.PublicKeyPEM(),
				MaxRole:        e.Managed.MaxRole,
				AccessTokenTTL: e.Managed.AccessTokenTTL,
			},
			KeyFingerprint: key.Fingerprint(),
			Leftover:       func(c *purearray.APIClient) bool { return c.PublicKey != "" && anyKey(ours, c) },
			Verify: func(ctx context.Context, id purearray.Identity) error {
				signer, err := purearray.NewSigner(id, key)
				if err != nil {
					return err
				}
				_, err = b.exchangeSigned(ctx, config, arrayUpstream(arr, e, id.ClientID, signer.Sign, e.Username), "registration of config "+config)
				return err
			},
		})
		return err
	})
	if err != nil {
		b.settleJournal(ctx, s, journal, client == nil && nothingCreated(err))
		return nil, err
	}
	journal.ClientID = client.ID
	return &registration{client: client, journal: journal}, nil
}

func anyKey(fps map[string]bool, c *purearray.APIClient) bool {
	for fp := range fps {
		if c.HasKey(fp) {
			return true
		}
	}
	return false
}

// nothingCreated: the registration failed in a way that leaves nothing of
// Vault's on the array (refused at create, or cleaned up after).
func nothingCreated(err error) bool {
	var re *purearray.RegisterError
	if !errors.As(err, &re) {
		return true // failed before the create: login, API version
	}
	if re.Step != purearray.StepCreate {
		return re.Cleanup == nil
	}
	// A create the array refused made nothing; one that timed out or lost
	// its answer may have, and the lookup found nothing only if it ran.
	return errors.Is(re.Err, pure1.ErrRejected) || errors.Is(re.Err, purearray.ErrNameTaken)
}

// settleJournal ends a registration's journal entry: removed when nothing is
// left on the array, else due at once so that the loop deletes what is.
func (b *backend) settleJournal(ctx context.Context, s logical.Storage, journal *cleanupEntry, clean bool) {
	defer b.cleanup.registering.Delete(journal.storageKey())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	var err error
	if clean {
		err = b.removeCleanup(ctx, s, journal)
	} else {
		j := *journal
		j.NotBefore = b.now().UTC()
		err = b.queueCleanup(ctx, s, &j)
	}
	if err != nil {
		b.Logger().Warn("settling a registration's delete list entry failed; the loop settles it after its grace", "api_client", journal.Client, "error", err)
	}
}

// registrationStored ends the journal of a registration whose config was
// stored: the client is the config's now.
func (b *backend) registrationStored(ctx context.Context, s logical.Storage, reg *registration) {
	b.settleJournal(ctx, s, reg.journal, true)
}

// undoRegistration deletes a client registered for a write that then
// failed. A store that reported an error may still have been applied
// (a cancelled request, a step-down, a Raft apply timeout): storage is read
// again, on a context of its own, and a client it names is kept. What cannot
// be deleted now stays on the delete list, due at once.
func (b *backend) undoRegistration(ctx context.Context, s logical.Storage, name string, reg *registration) {
	if reg == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel) // an unmount leaves it to the list
	defer stop()
	cur, err := readConfigEntry(ctx, s, name)
	if err == nil && cur != nil && cur.ClientID == reg.client.ID && cur.Managed != nil && cur.Managed.Name == reg.client.Name {
		b.Logger().Warn("a config write reported a storage error but was applied: its API client is kept", "config", name, "api_client", reg.client.Name)
		b.registrationStored(ctx, s, reg)
		return
	}
	b.settleJournal(ctx, s, reg.journal, false)
	b.drainCleanup(ctx, s, name)
}

// rotateManaged replaces the API client of a config Vault registered itself,
// with no person in the middle: a new key, a new client (the base name and
// -<unix time>), enabled, verified by an exchange, promoted; the old client
// stays enabled until the longest credential it issued has expired, then the
// delete list removes it (retireNow: at once, for a compromised key). Until
// the promotion is stored the active client keeps issuing credentials; a
// failure before it deletes the new client again.
func (b *backend) rotateManaged(ctx context.Context, req *logical.Request, name string, ki keyInput, retireNow bool) (*logical.Response, error) {
	resp, _, err := b.rotateManagedConfig(ctx, req.Storage, req.MountPoint, name, ki, retireNow)
	return resp, err
}

// rotateManagedConfig is rotateManaged for any caller (the path, or a
// scheduled rotation); it returns whether a new client was promoted.
func (b *backend) rotateManagedConfig(ctx context.Context, s logical.Storage, mount, name string, ki keyInput, retireNow bool) (*logical.Response, bool, error) {
	old, err := readConfigEntry(ctx, s, name)
	if err != nil {
		return nil, false, err
	}
	if old == nil {
		return configMissing(mount, name), false, nil
	}
	if old.Managed == nil || old.ClientID == "" {
		return logical.ErrorResponse("config %q has no API client Vault registered: nothing to rotate automatically", name), false, nil
	}
	if !ki.hasKey {
		ki.generate = true
	}
	nk, err := b.loadKey(ctx, ki)
	if err != nil {
		return nil, false, err
	}
	if nk.refusal != "" {
		return logical.ErrorResponse(nk.refusal), false, nil
	}
	key := nk.key
	if key.Fingerprint() == b.storedKeyFingerprint(name, old) {
		return logical.ErrorResponse("private_key is the active key of config %q: a rotation needs a new key pair; use generate_key=true", name), false, nil
	}

	wire := purearray.KindNamed(old.kindName())
	newName := wire.SuffixedName(old.Managed.BaseName, strconv.FormatInt(b.now().Unix(), 10))
	if newName == old.Managed.Name {
		newName = wire.SuffixedName(newName, "2") // two rotations within a second
	}
	reg, err := b.registerManaged(ctx, s, name, old, key, newName)
	if err != nil {
		b.Logger().Warn("rotation: a new API client could not be made; the active one is unchanged", "config", name, "api_client", newName, "error", err)
		resp, err := registerFailure(err, name)
		if resp != nil {
			resp.Data = map[string]interface{}{"error": resp.Data["error"].(string) + "; the active API client " + strconv.Quote(old.Managed.Name) + " still issues credentials"}
		}
		return resp, false, err
	}

	// Promote, if the config is still what the rotation started from.
	now := b.now().UTC()
	retireAt := now
	if !retireNow {
		retireAt = now.Add(b.longestCredential(ctx, s, name, old))
	}
	next := *old
	m := *old.Managed
	m.Name = reg.client.Name
	next.Managed = &m
	next.ClientID, next.KeyID = reg.client.ID, reg.client.KeyID
	next.PrivateKey = string(key.MarshalPKCS8PEM())
	next.KeySource = nk.source
	next.KeyCreatedAt = now
	next.Pending = nil
	next.Previous = &previousKey{AppID: old.ClientID, ClientName: old.Managed.Name, KeyCreatedAt: old.KeyCreatedAt, RetiredAt: now, RetireAt: retireAt}
	oldFP := ""
	if k := b.storedKey(name, old); k != nil {
		oldFP = k.Fingerprint()
		next.Previous.PublicKey, next.Previous.Fingerprint = k.PublicKeyPEM(), oldFP
	}
	c, err := newConfig(name, &next, key)
	if err == nil {
		err = b.storeIfUnchanged(ctx, s, name, old, &next)
	}
	if err != nil {
		b.undoRegistration(ctx, s, name, reg)
		if errors.Is(err, errConfigChanged) {
			return logical.ErrorResponse("config %q changed during the rotation: nothing was promoted and the new API client was deleted; try again", name), false, nil
		}
		return nil, false, err
	}
	b.registrationStored(ctx, s, reg)
	b.Logger().Info("rotation: API client promoted", "config", name, "api_client", reg.client.Name, "client_id", reg.client.ID,
		"previous_api_client", old.Managed.Name, "previous_api_client_delete_at", retireAt.Format(time.RFC3339))

	// The old client goes on the delete list, due when its last credential
	// has expired: leases and static tokens it issued work to their end.
	var warnings []string
	retire := newCleanup(name, old, old.Managed.Name, old.ClientID, oldFP, cleanupRetired, now, retireAt)
	if err := b.queueCleanup(ctx, s, retire); err != nil {
		b.Logger().Warn("rotation: the previous API client could not be put on the delete list", "config", name, "api_client", old.Managed.Name, "error", err)
		warnings = append(warnings, fmt.Sprintf("the previous API client %q could not be put on the delete list (%v): delete it on the array after %s",
			old.Managed.Name, err, formatTime(retireAt)))
	} else if retireNow {
		if err := b.retireAllNow(ctx, s, name); err != nil {
			return nil, true, err
		}
		b.drainNow(ctx, s, name)
		warnings = append(warnings, b.retireNowWarning(ctx, s, name))
		if cur, err := b.getConfig(ctx, s, name); err == nil && cur != nil {
			c = cur
		}
	} else {
		warnings = append(warnings, fmt.Sprintf("the previous API client %q stays enabled until %s, when the longest credential it issued has expired; "+
			"then Vault deletes it at the array. To cut it off now (a compromised key): vault write %sconfig/%s/rotate retire_previous=now",
			old.Managed.Name, formatTime(retireAt), mount, name))
	}
	data := c.responseData()
	data[fieldVerified] = true
	resp := &logical.Response{Data: data}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, true, nil
}

// retireAllNow makes every retired client of config name that still waits
// on the delete list due now: a key that leaked may be any earlier one.
func (b *backend) retireAllNow(ctx context.Context, s logical.Storage, name string) error {
	entries, err := b.cleanupEntries(ctx, s)
	if err != nil {
		return err
	}
	now := b.now().UTC()
	var due []*cleanupEntry
	for _, c := range entries {
		if c.Config == name && c.Reason == cleanupRetired && c.NotBefore.After(now) {
			cut := *c
			cut.NotBefore = now
			due = append(due, &cut)
		}
	}
	return b.queueCleanup(ctx, s, due...)
}

// retireNowWarning says what cutting the earlier clients off broke, and
// whether they are gone yet.
func (b *backend) retireNowWarning(ctx context.Context, s logical.Storage, name string) string {
	msg := "every earlier API client of this config was retired at once: leases, static tokens and access tokens they issued stop working at the array now"
	p, err := b.pendingDeletions(ctx, s, name)
	if err != nil || len(p) == 0 {
		return msg + "; they are deleted on the array"
	}
	return msg + fmt.Sprintf("; the array did not take every delete yet (%s): Vault retries them (vault read the config's pending_deletions)", pendingSummary(p))
}

// longestCredential is how long a credential of config name's active client
// may still live: its access tokens (static ones too) and its roles' JWTs,
// with a minute for clocks.
func (b *backend) longestCredential(ctx context.Context, s logical.Storage, name string, e *configEntry) time.Duration {
	longest := defaultArrayTokenTTL
	if e.Managed != nil && e.Managed.AccessTokenTTL > 0 {
		longest = e.Managed.AccessTokenTTL
	}
	if roles, err := s.List(ctx, roleStoragePrefix); err == nil {
		for _, r := range roles {
			role, err := b.getRole(ctx, s, r)
			if err != nil || role == nil || role.Config != name || role.CredentialType != credentialJWT {
				continue
			}
			life := role.TTL
			if life <= 0 {
				life = defaultJWTTTL
			}
			if limit := b.leaseCap(role); limit > 0 && life > limit {
				life = limit
			}
			longest = max(longest, life)
		}
	} else {
		longest = max(longest, b.System().MaxLeaseTTL())
	}
	return longest + time.Minute
}

var errConfigChanged = errors.New("the config changed meanwhile")

// storeIfUnchanged stores next if storage still holds old (nil: none). The
// write lock covers storage alone, never an array call.
func (b *backend) storeIfUnchanged(ctx context.Context, s logical.Storage, name string, old, next *configEntry) error {
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	cur, err := readConfigEntry(ctx, s, name)
	if err != nil {
		return err
	}
	if !sameEntry(cur, old) {
		return errConfigChanged
	}
	// New identity: shared tokens, flights and static tokens move to the
	// new client with the next read (other nodes from Invalidate).
	return b.putConfig(ctx, s, name, next)
}

// markPreviousDeleted records that the retired client is gone, if the config
// still names it as its previous one.
func (b *backend) markPreviousDeleted(ctx context.Context, s logical.Storage, name, clientName string) error {
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	cur, err := readConfigEntry(ctx, s, name)
	if err != nil || cur == nil || cur.Previous == nil || cur.Previous.ClientName != clientName || cur.Previous.Deleted {
		return err
	}
	cur.Previous.Deleted = true
	return b.putConfig(ctx, s, name, cur)
}

// registerFailure explains a managed registration that failed. Nothing was
// stored; the half-made client was deleted or is on the delete list.
func registerFailure(err error, name string) (*logical.Response, error) {
	var re *purearray.RegisterError
	step := "login to the array"
	if errors.As(err, &re) {
		step = string(re.Step) + " of API client " + re.Name
	}
	switch {
	case errors.Is(err, pure1.ErrRejected), errors.Is(err, pure1.ErrHostNotAllowed), errors.Is(err, purearray.ErrBadCA),
		errors.Is(err, purearray.ErrNoAPIVersion), errors.Is(err, purearray.ErrNameTaken), errors.Is(err, pure1.ErrBadResponse):
		return logical.ErrorResponse("registering an API client for config %q failed at the %s: %s. Nothing was stored", name, step, sentence(err)), nil
	case isContextErr(err) && !errors.Is(err, pure1.ErrUnavailable):
		return nil, err
	}
	return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf("registering an API client for config %q failed at the %s: %s. Nothing was stored; "+
		"whatever the array kept of it is on the delete list; try again", name, step, sentence(err)))
}
