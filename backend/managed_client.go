package backend

// The life of an API client Vault registered itself on an array (managed
// registration): made, verified, rotated, deleted. The config paths call
// these; so does the scheduled rotation (rotate_schedule.go).

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

// rotateManaged replaces the API client of a config Vault registered itself,
// with no person in the middle: a new key, a new client (the base name and
// -<unix time>), enabled, verified by an exchange, promoted, and only then the
// old client deleted at the array. Until the promotion is stored the active
// client keeps issuing credentials; a failure before it deletes the new
// client again, a failure to delete the old one is reported and recorded.
func (b *backend) rotateManaged(ctx context.Context, req *logical.Request, name string, ki keyInput) (*logical.Response, error) {
	resp, _, err := b.rotateManagedConfig(ctx, req.Storage, req.MountPoint, name, ki)
	return resp, err
}

// rotateManagedConfig is rotateManaged for any caller (the path, or a
// scheduled rotation); it returns whether a new client was promoted.
func (b *backend) rotateManagedConfig(ctx context.Context, s logical.Storage, mount, name string, ki keyInput) (*logical.Response, bool, error) {
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

	sep := clientNameSeparator(old.Kind)
	newName := old.Managed.BaseName + sep + strconv.FormatInt(b.now().Unix(), 10)
	if newName == old.Managed.Name {
		newName += sep + "2" // two rotations within a second
	}
	entry := *old
	registered, err := b.registerManaged(ctx, name, &entry, key, newName)
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
	next := *old
	m := *old.Managed
	m.Name = registered.Name
	next.Managed = &m
	next.ClientID, next.KeyID = registered.ID, registered.KeyID
	next.PrivateKey = string(key.MarshalPKCS8PEM())
	next.KeySource = nk.source
	next.KeyCreatedAt = now
	next.Pending = nil
	next.Previous = &previousKey{AppID: old.ClientID, ClientName: old.Managed.Name, KeyCreatedAt: old.KeyCreatedAt, RetiredAt: now}
	if k := b.storedKey(name, old); k != nil {
		next.Previous.PublicKey, next.Previous.Fingerprint = k.PublicKeyPEM(), k.Fingerprint()
	}
	c, err := newConfig(name, &next, key)
	if err == nil {
		err = b.storeIfUnchanged(ctx, s, name, old, &next)
	}
	if err != nil {
		b.undoRegistration(&entry, registered)
		if errors.Is(err, errConfigChanged) {
			return logical.ErrorResponse("config %q changed during the rotation: nothing was promoted and the new API client was deleted; try again", name), false, nil
		}
		return nil, false, err
	}
	b.Logger().Info("rotation: API client promoted", "config", name, "api_client", registered.Name, "client_id", registered.ID,
		"previous_api_client", old.Managed.Name)

	// The old client goes last: until now it was the one that worked.
	var warnings []string
	if err := b.deleteClient(ctx, old, old.Managed.Name); err != nil {
		b.Logger().Warn("rotation: the previous API client could not be deleted", "config", name, "api_client", old.Managed.Name, "error", err)
		warnings = append(warnings, fmt.Sprintf("the previous API client %q could not be deleted at the array (%v): delete it there", old.Managed.Name, err))
	} else if err := b.markPreviousDeleted(ctx, s, name, registered.ID); err != nil {
		return nil, true, err
	} else {
		next.Previous.Deleted = true
		c, _ = newConfig(name, &next, key)
	}
	data := c.responseData()
	data[fieldVerified] = true
	resp := &logical.Response{Data: data}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, true, nil
}

var errConfigChanged = errors.New("the config changed meanwhile")

// storeIfUnchanged stores next if storage still holds old.
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
	if err := b.putConfig(ctx, s, name, next); err != nil {
		return err
	}
	return nil
}

// markPreviousDeleted records that the retired client is gone, if the config
// still has the client the rotation promoted.
func (b *backend) markPreviousDeleted(ctx context.Context, s logical.Storage, name, clientID string) error {
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	cur, err := readConfigEntry(ctx, s, name)
	if err != nil || cur == nil || cur.ClientID != clientID || cur.Previous == nil {
		return err
	}
	cur.Previous.Deleted = true
	if err := b.putConfig(ctx, s, name, cur); err != nil {
		return err
	}
	return nil
}

// deleteClient deletes the API client clientName at e's array, with e's admin
// credential. It runs on even when the request that asked for it has ended.
func (b *backend) deleteClient(ctx context.Context, e *configEntry, clientName string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	arr, err := b.arrayFor(e)
	if err != nil {
		return err
	}
	admin, err := arr.Admin(ctx, e.Managed.AdminAPIToken)
	if err != nil {
		return err
	}
	return admin.DeleteAPIClient(ctx, clientName)
}

// registerManaged creates, enables and verifies a new API client named name
// for key, with the managed settings of e.
func (b *backend) registerManaged(ctx context.Context, config string, e *configEntry, key *pure1.Key, name string) (*purearray.APIClient, error) {
	arr, err := b.arrayFor(e)
	if err != nil {
		return nil, err
	}
	admin, err := arr.Admin(ctx, e.Managed.AdminAPIToken)
	if err != nil {
		return nil, err
	}
	spec := purearray.NewAPIClient{
		Name:           name,
		Issuer:         e.Issuer,
		PublicKeyPEM:   key.PublicKeyPEM(),
		MaxRole:        e.Managed.MaxRole,
		AccessTokenTTL: e.Managed.AccessTokenTTL,
		// FlashBlade names the role by reference, FlashArray by string.
		MaxRoleAsReference: e.Kind == purearray.KindFlashBlade,
	}
	return purearray.Register(ctx, admin, spec, func(ctx context.Context, id purearray.Identity) error {
		signer, err := purearray.NewSigner(id, key)
		if err != nil {
			return err
		}
		_, err = b.exchangeSigned(ctx, config, b.arrayUpstream(arr, e, signer, e.Username), "registration of config "+config)
		return err
	})
}

// undoRegistration deletes a client registered for a write that then failed,
// so that no client Vault does not know of is left on the array.
func (b *backend) undoRegistration(e *configEntry, c *purearray.APIClient) {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	arr, err := b.arrayFor(e)
	if err == nil {
		var admin purearray.Admin
		if admin, err = arr.Admin(ctx, e.Managed.AdminAPIToken); err == nil {
			err = admin.DeleteAPIClient(ctx, c.Name)
		}
	}
	if err != nil {
		b.Logger().Error("an API client registered for a write that failed could not be deleted: delete it on the array", "api_client", c.Name, "error", err)
	}
}

// registerFailure explains a managed registration that failed. Nothing was
// stored; the half-made client was deleted (or the message says it was not).
func registerFailure(err error, name string) (*logical.Response, error) {
	var re *purearray.RegisterError
	step := "logging in to the array"
	if errors.As(err, &re) {
		step = string(re.Step) + " of API client " + re.Name
	}
	switch {
	case errors.Is(err, pure1.ErrRejected), errors.Is(err, pure1.ErrHostNotAllowed), errors.Is(err, purearray.ErrBadCA),
		errors.Is(err, purearray.ErrNoAPIVersion):
		return logical.ErrorResponse("registering an API client for config %q failed at the %s: %s. Nothing was stored", name, step, sentence(err)), nil
	case isContextErr(err) && !errors.Is(err, pure1.ErrUnavailable):
		return nil, err
	}
	return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf("registering an API client for config %q failed at the %s: %s. Nothing was stored; try again", name, step, sentence(err)))
}
