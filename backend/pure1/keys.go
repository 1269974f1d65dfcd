// Package pure1 holds everything that speaks Pure1: the application key pair,
// the JWT a Pure1 client signs, and the OAuth token exchange. The Vault backend
// and the pure1-token CLI are both built on it, so a key or JWT that works in one
// works in the other.
package pure1

import (
	"context"
	"crypto/aes"
	"crypto/des"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

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
	ErrWeakExponent     = errors.New("the RSA public exponent is below 65537")
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
	// A small exponent (e=3, openssl genrsa -3) has a history of signature
	// forgeries against lax verifiers; 65537 is what every tool writes today.
	if priv.E < 65537 {
		return nil, fmt.Errorf("%w (this one has %d): generate a new one with openssl genrsa -aes256 -out private.pem 2048, which uses 65537", ErrWeakExponent, priv.E)
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
			// Vetted first: no point asking for a password that cannot help,
			// and the decrypter must never see a malformed structure.
			if err := checkEncryptedPKCS8(block.Bytes); err != nil {
				return nil, err
			}
			if len(password) == 0 {
				return nil, ErrPasswordRequired
			}
			return parsePKCS8(block.Bytes, password, "encrypted PKCS#8")
		case "EC PRIVATE KEY":
			return nil, fmt.Errorf("%w: this is an EC key; create one with openssl genrsa -aes256 -out private.pem 2048", ErrNotRSA)
		case "DSA PRIVATE KEY":
			return nil, fmt.Errorf("%w: this is a DSA key; create one with openssl genrsa -aes256 -out private.pem 2048", ErrNotRSA)
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

// ParsePrivateKeyContext is ParsePrivateKey that gives up when ctx ends,
// for callers that parse on behalf of a request. The parse itself cannot be
// interrupted; it runs on, bounded by the KDF caps, and its result is
// dropped.
func ParsePrivateKeyContext(ctx context.Context, pemData, password []byte) (*Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	type result struct {
		key *Key
		err error
	}
	done := make(chan result, 1)
	go func() {
		k, err := ParsePrivateKey(pemData, password)
		done <- result{k, err}
	}()
	select {
	case r := <-done:
		return r.key, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
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
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, ErrWrongPassword
		}
		if err != nil {
			// A cipher Go does not implement (camellia, aria, ...) or a
			// damaged DEK-Info header or body: no password would help.
			return nil, fmt.Errorf("%w: the encrypted RSA PRIVATE KEY is damaged or uses a cipher other than AES-CBC or DES-EDE3-CBC; convert it with openssl pkcs8 -topk8 -v2 aes-256-cbc", ErrUnsupportedKey)
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

// What checkEncryptedPKCS8 lets through to github.com/youmark/pkcs8: PBES2
// (RFC 8018) with PBKDF2 (HMAC-SHA1 or HMAC-SHA256) or scrypt (RFC 7914), and
// AES-CBC or DES-EDE3-CBC, the forms OpenSSL writes.
var (
	oidPBES2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
	oidHMACWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES128CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC     = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
)

const (
	// maxPBKDF2Iterations bounds the work a key file can ask for, since a
	// key is parsed while config writes wait: at the cap one parse took
	// 0.2-0.45 s on a loaded 2-core machine (HMAC-SHA256 / HMAC-SHA1).
	// OpenSSL writes 2048; 600,000 is OWASP's advice for PBKDF2-SHA256.
	maxPBKDF2Iterations = 600_000
	// maxScryptWork bounds N*r*p, scrypt's time: 2^18 is twice what
	// openssl pkcs8 -scrypt writes (N=16384, r=8, p=1), about 0.4 s here.
	maxScryptWork = 1 << 18
	// maxScryptMemory is OpenSSL's own default limit for scrypt keys (32 MiB;
	// openssl pkcs8 -scrypt uses 16 MiB), so any key openssl decrypts passes.
	maxScryptMemory = 32 << 20
	// maxScryptParallel bounds scrypt's p, which multiplies its time but not
	// its memory. OpenSSL writes 1.
	maxScryptParallel = 16
)

// reencryptCommand re-encrypts a key the way OpenSSL does by default.
const reencryptCommand = "openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 2048 -in private.pem -out private-2048.pem"

// checkEncryptedPKCS8 vets an ENCRYPTED PRIVATE KEY before its decryption.
// The decrypter panics on an IV or ciphertext of the wrong length, derives
// the key at whatever cost the file names (an scrypt N of 2^30 is a fatal
// out-of-memory), and reports an unsupported scheme as a failed decryption,
// which would send the user after a password that is right.
func checkEncryptedPKCS8(der []byte) error {
	corrupt := fmt.Errorf("%w: the ENCRYPTED PRIVATE KEY block is corrupt or truncated", ErrUnsupportedKey)
	unsupported := func(what string) error {
		return fmt.Errorf("%w: the key is encrypted with %s, which is not supported; convert it with openssl pkcs8 -topk8 -v2 aes-256-cbc", ErrUnsupportedKey, what)
	}
	var info struct {
		Algo pkix.AlgorithmIdentifier
		Data []byte
	}
	if rest, err := asn1.Unmarshal(der, &info); err != nil || len(rest) != 0 {
		return corrupt
	}
	if !info.Algo.Algorithm.Equal(oidPBES2) {
		return unsupported("a legacy PKCS#5 v1.5 or PKCS#12 scheme")
	}
	var params struct {
		KDF    pkix.AlgorithmIdentifier
		Cipher pkix.AlgorithmIdentifier
	}
	if rest, err := asn1.Unmarshal(info.Algo.Parameters.FullBytes, &params); err != nil || len(rest) != 0 {
		return corrupt
	}

	var blockSize, keySize int
	switch c := params.Cipher.Algorithm; {
	case c.Equal(oidAES128CBC):
		blockSize, keySize = aes.BlockSize, 16
	case c.Equal(oidAES192CBC):
		blockSize, keySize = aes.BlockSize, 24
	case c.Equal(oidAES256CBC):
		blockSize, keySize = aes.BlockSize, 32
	case c.Equal(oidDESEDE3CBC):
		blockSize, keySize = des.BlockSize, 24
	default:
		return unsupported("a cipher other than AES-CBC or DES-EDE3-CBC")
	}
	var iv []byte
	if rest, err := asn1.Unmarshal(params.Cipher.Parameters.FullBytes, &iv); err != nil || len(rest) != 0 || len(iv) != blockSize {
		return corrupt
	}
	if len(info.Data) == 0 || len(info.Data)%blockSize != 0 {
		return corrupt
	}

	switch {
	case params.KDF.Algorithm.Equal(oidPBKDF2):
		var p struct {
			Salt       []byte
			Iterations int
			KeyLength  int                      `asn1:"optional"`
			PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
		}
		if rest, err := asn1.Unmarshal(params.KDF.Parameters.FullBytes, &p); err != nil || len(rest) != 0 {
			return corrupt
		}
		if p.Iterations < 1 {
			return corrupt
		}
		if p.Iterations > maxPBKDF2Iterations {
			return fmt.Errorf("%w: the key's encryption asks for %d PBKDF2 iterations, more than the %d accepted (every parse pays for each one); re-encrypt it with fewer: %s",
				ErrUnsupportedKey, p.Iterations, maxPBKDF2Iterations, reencryptCommand)
		}
		if p.KeyLength != 0 && p.KeyLength != keySize {
			return corrupt
		}
		switch prf := p.PRF.Algorithm; {
		case len(prf) == 0 || prf.Equal(oidHMACWithSHA1):
		case prf.Equal(oidHMACWithSHA256) && p.KeyLength == 0:
			// The decrypter reads no keyLength: with one present it would
			// take it for the PRF and fall back to HMAC-SHA1.
		default:
			return unsupported("a PBKDF2 PRF other than HMAC-SHA1 or HMAC-SHA256")
		}
	case params.KDF.Algorithm.Equal(oidScrypt):
		var p struct {
			Salt      []byte
			N, R, P   int
			KeyLength int `asn1:"optional"`
		}
		if rest, err := asn1.Unmarshal(params.KDF.Parameters.FullBytes, &p); err != nil || len(rest) != 0 {
			return corrupt
		}
		if p.N <= 1 || p.N&(p.N-1) != 0 || p.R < 1 || p.P < 1 || (p.KeyLength != 0 && p.KeyLength != keySize) {
			return corrupt
		}
		// scrypt needs 128*r*(N+p) bytes and time in proportion to N*r*p.
		lim := maxScryptMemory / 128
		if p.R > lim || p.N > lim/p.R || p.P > maxScryptParallel || p.N+p.P > lim/p.R {
			return unsupported(fmt.Sprintf("scrypt parameters beyond %d MiB of memory or parallelization %d", maxScryptMemory>>20, maxScryptParallel))
		}
		// N*r fits (checked above); p is at most maxScryptParallel.
		if p.N*p.R*p.P > maxScryptWork {
			return fmt.Errorf("%w: the key's scrypt parameters (N=%d, r=%d, p=%d) ask for more work than the %d (N*r*p) accepted; re-encrypt it: %s",
				ErrUnsupportedKey, p.N, p.R, p.P, maxScryptWork, reencryptCommand)
		}
	default:
		return unsupported("a key derivation other than PBKDF2 or scrypt")
	}
	return nil
}

func keyTypeName(k any) string {
	switch k.(type) {
	case *ecdsa.PrivateKey:
		return "ECDSA"
	case ed25519.PrivateKey:
		return "Ed25519"
	case *ecdh.PrivateKey:
		return "ECDH"
	}
	return fmt.Sprintf("%T", k)
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

// PublicKeyFingerprint is Key.Fingerprint of a PEM public key (PUBLIC KEY,
// SubjectPublicKeyInfo), as an array shows an API client's: the hex SHA-256
// of its DER. It tells whether a key someone else holds is one of ours.
func PublicKeyFingerprint(pemData []byte) (string, error) {
	block, _ := pem.Decode(pemData)
	if block == nil || block.Type != "PUBLIC KEY" {
		return "", errors.New("not a PEM PUBLIC KEY")
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
		return "", fmt.Errorf("the public key does not parse: %w", err)
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:]), nil
}
