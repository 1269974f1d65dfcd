// Package pure1 holds everything that speaks Pure1: the application key pair,
// the JWT a Pure1 client signs, and the OAuth token exchange. The Vault backend
// and the pure1-token CLI are both built on it, so a key or JWT that works in one
// works in the other.
package pure1

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/youmark/pkcs8"
)

const (
	// MinKeyBits is the smallest RSA modulus accepted. Pure1 documents 2048.
	MinKeyBits = 2048
	// MaxKeyBits bounds imported keys: signing cost grows with the cube of
	// the size, and nothing larger is used in practice.
	MaxKeyBits = 8192
	// DefaultKeyBits is the size of keys generated when none is asked for.
	DefaultKeyBits = 2048
)

// GenerateKeyBits are the sizes GenerateKey accepts.
var GenerateKeyBits = []int{2048, 3072, 4096}

// Sentinel errors for the key problems a caller explains differently.
var (
	ErrNotPEM           = errors.New("not a PEM-encoded private key: expected a block that starts with -----BEGIN ... PRIVATE KEY-----")
	ErrPublicKey        = errors.New("this is a public key or certificate, not a private key: supply the private key (the file made by openssl genrsa)")
	ErrNotRSA           = errors.New("Pure1 application keys must be RSA")
	ErrKeyTooSmall      = fmt.Errorf("RSA keys must be at least %d bits", MinKeyBits)
	ErrKeyTooLarge      = fmt.Errorf("RSA keys larger than %d bits are not supported", MaxKeyBits)
	ErrPasswordRequired = errors.New("the private key is encrypted: supply its password")
	ErrWrongPassword    = errors.New("the password does not decrypt the private key: check the password")
	ErrUnsupportedKey   = errors.New("unsupported private key format")
)

// Key is a parsed Pure1 application key with the values derived from it
// computed once, because signing hot paths must not redo them.
type Key struct {
	priv        *rsa.PrivateKey
	publicPEM   string
	fingerprint string
	// Format says how the key arrived ("generated", "PKCS#1", "PKCS#8",
	// "encrypted PKCS#8", "encrypted PEM (legacy)"), for operators.
	Format string
}

// NewKey wraps an RSA private key after checking it is one Pure1 accepts.
func NewKey(priv *rsa.PrivateKey, format string) (*Key, error) {
	if priv == nil {
		return nil, ErrUnsupportedKey
	}
	bits := priv.N.BitLen()
	if bits < MinKeyBits {
		return nil, fmt.Errorf("%w (this one has %d): generate a new one with openssl genrsa -aes256 -out private.pem 2048", ErrKeyTooSmall, bits)
	}
	if bits > MaxKeyBits {
		return nil, fmt.Errorf("%w (this one has %d)", ErrKeyTooLarge, bits)
	}
	if err := priv.Validate(); err != nil {
		return nil, fmt.Errorf("the RSA private key is inconsistent: %w", err)
	}
	// CRT values make every signature ~3x cheaper; parsers fill them in, but
	// a hand-built key may not have them.
	priv.Precompute()
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encoding the public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return &Key{
		priv:        priv,
		publicPEM:   string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		fingerprint: hex.EncodeToString(sum[:]),
		Format:      format,
	}, nil
}

// GenerateKey creates a new RSA key pair of one of GenerateKeyBits sizes.
func GenerateKey(bits int) (*Key, error) {
	if !validGenerateBits(bits) {
		return nil, fmt.Errorf("key_bits must be one of 2048, 3072 or 4096, not %d", bits)
	}
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, fmt.Errorf("generating an RSA key: %w", err)
	}
	return NewKey(priv, "generated")
}

func validGenerateBits(bits int) bool {
	for _, b := range GenerateKeyBits {
		if b == bits {
			return true
		}
	}
	return false
}

// ParsePrivateKey reads a PEM RSA private key in any form a Pure1 user has:
// PKCS#1 ("RSA PRIVATE KEY"), PKCS#8 ("PRIVATE KEY"), legacy encrypted PEM
// (OpenSSL 1.1's genrsa -aes256: "Proc-Type: 4,ENCRYPTED") and encrypted
// PKCS#8/PBES2 (OpenSSL 3's genrsa -aes256: "ENCRYPTED PRIVATE KEY").
// The password is used only for the encrypted forms and ignored otherwise.
// Errors never contain key material.
func ParsePrivateKey(pemData []byte, password []byte) (*Key, error) {
	rest := pemData
	sawPublic := false
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "RSA PRIVATE KEY":
			return parsePKCS1Block(block, password)
		case "PRIVATE KEY":
			return parsePKCS8(block.Bytes, nil, "PKCS#8")
		case "ENCRYPTED PRIVATE KEY":
			if len(password) == 0 {
				return nil, ErrPasswordRequired
			}
			return parsePKCS8(block.Bytes, password, "encrypted PKCS#8")
		case "EC PRIVATE KEY":
			return nil, fmt.Errorf("%w: this is an EC key; create one with openssl genrsa -aes256 -out private.pem 2048", ErrNotRSA)
		case "OPENSSH PRIVATE KEY":
			return nil, fmt.Errorf("%w: OpenSSH keys are not read; convert with ssh-keygen -p -m PKCS8 -f FILE, or create one with openssl genrsa", ErrUnsupportedKey)
		case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
			sawPublic = true
		}
		// Anything else (EC PARAMETERS, a stray certificate) is skipped, the
		// way openssl skips it, so a bundle with the key in it still works.
	}
	if sawPublic {
		return nil, ErrPublicKey
	}
	return nil, ErrNotPEM
}

func parsePKCS1Block(block *pem.Block, password []byte) (*Key, error) {
	der := block.Bytes
	format := "PKCS#1"
	//nolint:staticcheck // Legacy PEM encryption is insecure by design, but it
	// is what OpenSSL 1.1's genrsa -aes256 wrote and users still hold such keys.
	if x509.IsEncryptedPEMBlock(block) {
		if len(password) == 0 {
			return nil, ErrPasswordRequired
		}
		plain, err := x509.DecryptPEMBlock(block, password) //nolint:staticcheck // see above
		if err != nil {
			return nil, ErrWrongPassword
		}
		der, format = plain, "encrypted PEM (legacy)"
	}
	priv, err := x509.ParsePKCS1PrivateKey(der)
	if err != nil {
		if format != "PKCS#1" {
			// Legacy PEM encryption has no integrity check: a wrong password
			// usually shows up only here, as garbage DER.
			return nil, ErrWrongPassword
		}
		return nil, fmt.Errorf("%w: the RSA PRIVATE KEY block is corrupt or truncated", ErrUnsupportedKey)
	}
	return NewKey(priv, format)
}

func parsePKCS8(der, password []byte, format string) (*Key, error) {
	var (
		parsed any
		err    error
	)
	if password == nil {
		parsed, err = x509.ParsePKCS8PrivateKey(der)
	} else {
		parsed, _, err = pkcs8.ParsePrivateKey(der, password)
	}
	if err != nil {
		if password != nil {
			return nil, ErrWrongPassword
		}
		return nil, fmt.Errorf("%w: the PRIVATE KEY block is corrupt, truncated, or holds a key type Go does not read", ErrUnsupportedKey)
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: this is a %s key; create one with openssl genrsa -aes256 -out private.pem 2048", ErrNotRSA, keyTypeName(parsed))
	}
	return NewKey(priv, format)
}

func keyTypeName(k any) string {
	t := fmt.Sprintf("%T", k)
	switch {
	case strings.Contains(t, "ecdsa"):
		return "ECDSA"
	case strings.Contains(t, "ed25519"):
		return "Ed25519"
	case strings.Contains(t, "ecdh"):
		return "ECDH"
	}
	return t
}

// Bits is the RSA modulus size.
func (k *Key) Bits() int { return k.priv.N.BitLen() }

// PublicKeyPEM is the PEM SubjectPublicKeyInfo, the form Pure1's "Register
// Application" dialog takes.
func (k *Key) PublicKeyPEM() string { return k.publicPEM }

// Fingerprint is the lowercase hex SHA-256 of the public key's DER, the same as
// `openssl pkey -pubin -outform DER | sha256sum`.
func (k *Key) Fingerprint() string { return k.fingerprint }

// MarshalPKCS8PEM encodes the private key unencrypted, for storage behind
// Vault's barrier (and seal wrap) only.
func (k *Key) MarshalPKCS8PEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		// An RSA key NewKey accepted always marshals.
		panic(fmt.Sprintf("marshal PKCS#8: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// MarshalEncryptedPKCS8PEM encodes the private key as encrypted PKCS#8
// (PBES2, AES-256-CBC, PBKDF2-SHA256): the same form OpenSSL 3 writes.
func (k *Key) MarshalEncryptedPKCS8PEM(password []byte) ([]byte, error) {
	if len(password) == 0 {
		return nil, errors.New("a password is required to encrypt the private key")
	}
	der, err := pkcs8.MarshalPrivateKey(k.priv, password, nil)
	if err != nil {
		return nil, fmt.Errorf("encrypting the private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), nil
}

// PublicKey returns the RSA public key, for verifying what this key signed.
func (k *Key) PublicKey() *rsa.PublicKey { return &k.priv.PublicKey }

// Equal reports whether two keys are the same key pair.
func (k *Key) Equal(o *Key) bool {
	return k != nil && o != nil && k.priv.Equal(o.priv)
}
