package backend

// The key a write brings (config/<name> and config/<name>/rotate): its
// fields, read and checked; the parse or generation, done before any lock
// and abandoned with its request; and what a refused key's error says.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/pure1"
)

// keyInput is the key a write brings: imported (privateKey, password) or
// generated (keyBits). config/<name> and config/<name>/rotate take it alike.
type keyInput struct {
	privateKey, password string
	keyBits              int
	generate             bool
	// has*: the field was in the request.
	hasKey, hasPassword, keyBitsSet bool
}

// newKey is a key a write brought, parsed or generated, or the reason it was
// refused.
type newKey struct {
	key      *pure1.Key // nil: the write brings no key
	source   string     // key_source: generated, or imported (format)
	warnings []string
	refusal  string // the user's to fix; key is nil
}

// loadKey parses or generates the key of in. It honours ctx: a client that
// gives up stops waiting at once, although the work itself, which cannot be
// interrupted, ends on its own (bounded by the key parser's limits).
func (b *backend) loadKey(ctx context.Context, in keyInput) (newKey, error) {
	var nk newKey
	switch {
	case in.hasKey:
		key, err := keyWork(ctx, func() (*pure1.Key, error) {
			return b.parseKey([]byte(in.privateKey), []byte(in.password))
		})
		if isContextErr(err) {
			return nk, err
		}
		if err != nil {
			nk.refusal = privateKeyError(err)
			return nk, nil
		}
		if in.hasPassword && !strings.Contains(key.Format, "encrypted") {
			nk.warnings = append(nk.warnings, "private_key is not encrypted; private_key_password was ignored")
		}
		nk.key, nk.source = key, "imported ("+key.Format+")"
	case in.generate:
		bits := pure1.DefaultKeyBits
		if in.keyBitsSet {
			bits = in.keyBits
		}
		key, err := keyWork(ctx, func() (*pure1.Key, error) { return b.generateKey(bits) })
		if isContextErr(err) {
			return nk, err
		}
		if err != nil {
			nk.refusal = err.Error()
			return nk, nil
		}
		nk.key, nk.source = key, "generated"
	}
	return nk, nil
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// keyWork runs f on its own goroutine and waits for it or for ctx, whichever
// ends first.
func keyWork(ctx context.Context, f func() (*pure1.Key, error)) (*pure1.Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("the request ended before its key was read: %w", err)
	}
	type result struct {
		key *pure1.Key
		err error
	}
	done := make(chan result, 1) // buffered: an abandoned f still finishes and exits
	go func() {
		k, err := f()
		done <- result{k, err}
	}()
	select {
	case r := <-done:
		return r.key, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("the request ended before its key was read: %w", ctx.Err())
	}
}

// readKeyInput collects and checks the key fields of a write.
func readKeyInput(d *framework.FieldData) (keyInput, error) {
	var w keyInput
	var v interface{}
	if v, w.hasKey = d.GetOk(fieldPrivateKey); w.hasKey {
		w.privateKey = v.(string)
		if strings.TrimSpace(w.privateKey) == "" {
			return keyInput{}, errors.New("private_key is empty: pass the PEM file, e.g. private_key=@private.pem")
		}
		if err := checkLength(fieldPrivateKey, w.privateKey, maxPrivateKeyBytes); err != nil {
			return keyInput{}, err
		}
	}
	if v, w.hasPassword = d.GetOk(fieldPrivateKeyPassword); w.hasPassword {
		w.password = v.(string)
		if err := checkLength(fieldPrivateKeyPassword, w.password, maxPasswordBytes); err != nil {
			return keyInput{}, err
		}
		if !w.hasKey {
			return keyInput{}, errors.New("private_key_password is only used to decrypt a private_key written in the same request")
		}
	}
	w.generate = d.Get(fieldGenerateKey).(bool)
	if v, w.keyBitsSet = d.GetOk(fieldKeyBits); w.keyBitsSet {
		w.keyBits = v.(int)
		if !w.generate {
			return keyInput{}, errors.New("key_bits applies only with generate_key=true; an imported key keeps its own size")
		}
	}
	if w.generate && w.hasKey {
		return keyInput{}, errors.New("private_key and generate_key=true exclude each other: import a key, or let Vault generate one")
	}
	return w, nil
}

// privateKeyError explains a key that was refused, naming the field to fix.
func privateKeyError(err error) string {
	switch {
	case errors.Is(err, pure1.ErrPasswordRequired):
		return "private_key is encrypted: supply private_key_password"
	case errors.Is(err, pure1.ErrWrongPassword):
		return "private_key_password does not decrypt private_key: check the password"
	}
	return "private_key: " + err.Error()
}
