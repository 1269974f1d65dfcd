package pure1

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/youmark/pkcs8"
)

// testPassword encrypts every encrypted fixture (see testdata/gen.sh).
const testPassword = "pure1-test-password"

// wrongPassword is distinctive enough that finding it in an error message
// means the message echoed it.
const wrongPassword = "Wr0ng-Passw0rd-Canary"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("reading fixture (regenerate with testdata/gen.sh): %v", err)
	}
	return data
}

func readFixtureErr(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join("testdata", name))
}

var (
	fingerprintsOnce sync.Once
	fingerprints     map[string]string
	fingerprintsErr  error
)

// opensslFingerprint is the fingerprint openssl computed for a fixture when
// gen.sh made it: sha256 of `openssl pkey -pubout -outform DER`.
func opensslFingerprint(t testing.TB, name string) string {
	t.Helper()
	fingerprintsOnce.Do(func() {
		f, err := os.Open(filepath.Join("testdata", "fingerprints.txt"))
		if err != nil {
			fingerprintsErr = err
			return
		}
		defer f.Close()
		fingerprints = map[string]string{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fields := strings.Fields(sc.Text()); len(fields) == 2 {
				fingerprints[fields[0]] = fields[1]
			}
		}
		fingerprintsErr = sc.Err()
	})
	if fingerprintsErr != nil {
		t.Fatalf("testdata/fingerprints.txt: %v", fingerprintsErr)
	}
	fp, ok := fingerprints[name]
	if !ok || len(fp) != 64 {
		t.Fatalf("testdata/fingerprints.txt has no fingerprint for %s", name)
	}
	return fp
}

// --- ASN.1 shapes of encrypted PKCS#8 (RFC 8018), to forge damaged keys. ---

type fxEncryptedKeyInfo struct {
	Algo pkix.AlgorithmIdentifier
	Data []byte
}

type fxPBES2Params struct {
	KDF    pkix.AlgorithmIdentifier
	Cipher pkix.AlgorithmIdentifier
}

type fxPBKDF2Params struct {
	Salt       []byte
	Iterations int
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

type fxScryptParams struct {
	Salt    []byte
	N, R, P int
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	der, err := asn1.Marshal(v)
	if err != nil {
		t.Fatalf("asn1.Marshal: %v", err)
	}
	return der
}

func mustUnmarshal(t testing.TB, der []byte, v any) {
	t.Helper()
	if rest, err := asn1.Unmarshal(der, v); err != nil || len(rest) != 0 {
		t.Fatalf("asn1.Unmarshal(%T): %v (%d trailing bytes)", v, err, len(rest))
	}
}

// forgeEncryptedPKCS8 decodes an ENCRYPTED PRIVATE KEY fixture, lets edit
// change its structure, and re-encodes it as PEM.
func forgeEncryptedPKCS8(t testing.TB, fixture string, edit func(info *fxEncryptedKeyInfo, params *fxPBES2Params)) []byte {
	t.Helper()
	block, _ := pem.Decode(readFixture(t, fixture))
	if block == nil || block.Type != "ENCRYPTED PRIVATE KEY" {
		t.Fatalf("%s is not an ENCRYPTED PRIVATE KEY", fixture)
	}
	var info fxEncryptedKeyInfo
	mustUnmarshal(t, block.Bytes, &info)
	var params fxPBES2Params
	mustUnmarshal(t, info.Algo.Parameters.FullBytes, &params)
	edit(&info, &params)
	info.Algo.Parameters = asn1.RawValue{FullBytes: mustMarshal(t, params)}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: mustMarshal(t, info)})
}

func setIV(t testing.TB, params *fxPBES2Params, iv []byte) {
	params.Cipher.Parameters = asn1.RawValue{FullBytes: mustMarshal(t, iv)}
}

func editPBKDF2(t testing.TB, params *fxPBES2Params, edit func(*fxPBKDF2Params)) {
	var p fxPBKDF2Params
	mustUnmarshal(t, params.KDF.Parameters.FullBytes, &p)
	edit(&p)
	params.KDF.Parameters = asn1.RawValue{FullBytes: mustMarshal(t, p)}
}

func editScrypt(t testing.TB, params *fxPBES2Params, edit func(*fxScryptParams)) {
	var p fxScryptParams
	mustUnmarshal(t, params.KDF.Parameters.FullBytes, &p)
	edit(&p)
	params.KDF.Parameters = asn1.RawValue{FullBytes: mustMarshal(t, p)}
}

// rePEM wraps der in a PEM block of the given type.
func rePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// pemDER is the DER of the first PEM block of a fixture.
func pemDER(t testing.TB, fixture string) []byte {
	t.Helper()
	block, _ := pem.Decode(readFixture(t, fixture))
	if block == nil {
		t.Fatalf("%s has no PEM block", fixture)
	}
	return block.Bytes
}

var base64Line = regexp.MustCompile(`^[A-Za-z0-9+/=]{16,}$`)

// assertNoSecretsInError checks err mentions neither the password nor any
// base64 line of the PEM input.
func assertNoSecretsInError(t testing.TB, err error, input []byte, password string) {
	t.Helper()
	msg := err.Error()
	if password != "" && strings.Contains(msg, password) {
		t.Errorf("error echoes the password: %q", msg)
	}
	for _, line := range strings.Split(string(input), "\n") {
		line = strings.TrimSpace(line)
		if base64Line.MatchString(line) && strings.Contains(msg, line) {
			t.Errorf("error echoes key material %q: %q", line, msg)
		}
	}
}

func TestParsePrivateKey(t *testing.T) {
	t.Parallel()
	_, sshErr := os.Stat(filepath.Join("testdata", "rsa2048-openssh.key"))
	_, scryptErr := os.Stat(filepath.Join("testdata", "rsa2048-enc-pkcs8-scrypt.pem"))

	type tc struct {
		name     string
		file     string                  // fixture, unless data is set
		data     func(testing.TB) []byte // built input
		password string
		skip     string // non-empty: why the case cannot run here

		wantErr error  // sentinel the error must wrap
		wantIn  string // and text it must contain (the fix)
		format  string // Key.Format on success
		bits    int
		fpOf    string // fixture whose openssl fingerprint the key must have
	}
	missing := func(err error, what string) string {
		if err != nil {
			return what + " fixture missing (gen.sh skipped it)"
		}
		return ""
	}

	cases := []tc{
		// What openssl genrsa writes, per OpenSSL version.
		{name: "OpenSSL 3 genrsa -aes256 (encrypted PKCS#8)", file: "rsa2048-enc-pkcs8.pem", password: testPassword, format: "encrypted PKCS#8", bits: 2048},
		{name: "OpenSSL 1.1 genrsa -aes256 (legacy encrypted PEM)", file: "rsa2048-enc-legacy-aes256.pem", password: testPassword, format: "encrypted PEM (legacy)", bits: 2048},
		{name: "genrsa -traditional -des3 (legacy encrypted PEM)", file: "rsa2048-enc-legacy-des3.pem", password: testPassword, format: "encrypted PEM (legacy)", bits: 2048},
		{name: "PKCS#1 (genrsa -traditional)", file: "rsa2048-pkcs1.pem", format: "PKCS#1", bits: 2048},
		{name: "PKCS#8 (genrsa)", file: "rsa2048-pkcs8.pem", format: "PKCS#8", bits: 2048},
		{name: "PKCS#8 3072", file: "rsa3072-pkcs8.pem", format: "PKCS#8", bits: 3072},
		{name: "PKCS#1 4096", file: "rsa4096-pkcs1.pem", format: "PKCS#1", bits: 4096},
		{name: "encrypted PKCS#8 scrypt", file: "rsa2048-enc-pkcs8-scrypt.pem", password: testPassword, format: "encrypted PKCS#8", bits: 2048, skip: missing(scryptErr, "scrypt")},
		{name: "encrypted PKCS#8 PBES2 des3", file: "rsa2048-enc-pkcs8-des3.pem", password: testPassword, format: "encrypted PKCS#8", bits: 2048},

		// A password for a plain key is ignored.
		{name: "password ignored for PKCS#1", file: "rsa2048-pkcs1.pem", password: wrongPassword, format: "PKCS#1", bits: 2048},
		{name: "password ignored for PKCS#8", file: "rsa2048-pkcs8.pem", password: wrongPassword, format: "PKCS#8", bits: 2048},

		// Real-world wrappings of a good key.
		{name: "certificate before the key (bundle)", fpOf: "rsa2048-pkcs1.pem", format: "PKCS#1", bits: 2048, data: func(t testing.TB) []byte {
			return append(readFixture(t, "rsa2048-cert.pem"), readFixture(t, "rsa2048-pkcs1.pem")...)
		}},
		{name: "CRLF line endings", fpOf: "rsa2048-enc-pkcs8.pem", password: testPassword, format: "encrypted PKCS#8", bits: 2048, data: func(t testing.TB) []byte {
			return bytes.ReplaceAll(readFixture(t, "rsa2048-enc-pkcs8.pem"), []byte("\n"), []byte("\r\n"))
		}},
		{name: "CRLF legacy encrypted PEM", fpOf: "rsa2048-enc-legacy-aes256.pem", password: testPassword, format: "encrypted PEM (legacy)", bits: 2048, data: func(t testing.TB) []byte {
			return bytes.ReplaceAll(readFixture(t, "rsa2048-enc-legacy-aes256.pem"), []byte("\n"), []byte("\r\n"))
		}},
		{name: "text before the key (openssl pkcs12 -nodes bag attributes)", fpOf: "rsa2048-pkcs8.pem", format: "PKCS#8", bits: 2048, data: func(t testing.TB) []byte {
			return append([]byte("Bag Attributes\n    localKeyID: 01 02 03\nKey Attributes: <No Attributes>\n"), readFixture(t, "rsa2048-pkcs8.pem")...)
		}},
		{name: "no trailing newline", fpOf: "rsa2048-pkcs1.pem", format: "PKCS#1", bits: 2048, data: func(t testing.TB) []byte {
			return bytes.TrimRight(readFixture(t, "rsa2048-pkcs1.pem"), "\n")
		}},

		// Encrypted without a password.
		{name: "encrypted PKCS#8 without password", file: "rsa2048-enc-pkcs8.pem", wantErr: ErrPasswordRequired},
		{name: "legacy aes256 without password", file: "rsa2048-enc-legacy-aes256.pem", wantErr: ErrPasswordRequired},
		{name: "legacy des3 without password", file: "rsa2048-enc-legacy-des3.pem", wantErr: ErrPasswordRequired},
		{name: "scrypt without password", file: "rsa2048-enc-pkcs8-scrypt.pem", wantErr: ErrPasswordRequired, skip: missing(scryptErr, "scrypt")},
		{name: "PBES2 des3 without password", file: "rsa2048-enc-pkcs8-des3.pem", wantErr: ErrPasswordRequired},

		// Wrong password.
		{name: "encrypted PKCS#8 wrong password", file: "rsa2048-enc-pkcs8.pem", password: wrongPassword, wantErr: ErrWrongPassword},
		{name: "legacy aes256 wrong password", file: "rsa2048-enc-legacy-aes256.pem", password: wrongPassword, wantErr: ErrWrongPassword},
		{name: "legacy des3 wrong password", file: "rsa2048-enc-legacy-des3.pem", password: wrongPassword, wantErr: ErrWrongPassword},
		{name: "scrypt wrong password", file: "rsa2048-enc-pkcs8-scrypt.pem", password: wrongPassword, wantErr: ErrWrongPassword, skip: missing(scryptErr, "scrypt")},
		{name: "PBES2 des3 wrong password", file: "rsa2048-enc-pkcs8-des3.pem", password: wrongPassword, wantErr: ErrWrongPassword},
		{name: "encrypted PKCS#8 password with trailing newline", file: "rsa2048-enc-pkcs8.pem", password: testPassword + "\n", wantErr: ErrWrongPassword},

		// Encryptions Go cannot undo: say so instead of blaming the password.
		{name: "PKCS#8 PBES1 (PBE-SHA1-3DES)", file: "rsa2048-enc-pkcs8-pbes1.pem", password: testPassword, wantErr: ErrUnsupportedKey},
		{name: "PKCS#8 PBES2 with hmacWithSHA512 PRF", file: "rsa2048-enc-pkcs8-sha512prf.pem", password: testPassword, wantErr: ErrUnsupportedKey},
		{name: "legacy PEM camellia-256", file: "rsa2048-enc-legacy-camellia256.pem", password: testPassword, wantErr: ErrUnsupportedKey},

		// Damaged encrypted PKCS#8: an error, never a panic or a hang.
		{name: "encrypted PKCS#8 ciphertext cut mid-block", password: testPassword, wantErr: ErrUnsupportedKey, data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8.pem", func(info *fxEncryptedKeyInfo, _ *fxPBES2Params) {
				info.Data = info.Data[:len(info.Data)-5]
			})
		}},
		{name: "encrypted PKCS#8 empty ciphertext", password: testPassword, wantErr: ErrUnsupportedKey, data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8.pem", func(info *fxEncryptedKeyInfo, _ *fxPBES2Params) {
				info.Data = nil
			})
		}},
		// Without an integrity check this is indistinguishable from a wrong password.
		{name: "encrypted PKCS#8 ciphertext cut at a block boundary", password: testPassword, wantErr: ErrWrongPassword, data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8.pem", func(info *fxEncryptedKeyInfo, _ *fxPBES2Params) {
				info.Data = info.Data[:len(info.Data)/2/16*16]
			})
		}},
		{name: "encrypted PKCS#8 short IV", password: testPassword, wantErr: ErrUnsupportedKey, data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8.pem", func(_ *fxEncryptedKeyInfo, params *fxPBES2Params) {
				setIV(t, params, make([]byte, 12))
			})
		}},
		{name: "PBES2 des3 with an AES-sized IV", password: testPassword, wantErr: ErrUnsupportedKey, data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8-des3.pem", func(_ *fxEncryptedKeyInfo, params *fxPBES2Params) {
				setIV(t, params, make([]byte, 16))
			})
		}},
		{name: "encrypted PKCS#8 2^31-1 PBKDF2 iterations", password: testPassword, wantErr: ErrUnsupportedKey, data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8.pem", func(_ *fxEncryptedKeyInfo, params *fxPBES2Params) {
				editPBKDF2(t, params, func(p *fxPBKDF2Params) { p.Iterations = 1<<31 - 1 })
			})
		}},
		// Bounded work: a parse at the cap stays well under a second here.
		{name: "encrypted PKCS#8 at the PBKDF2 cap", password: testPassword, format: "encrypted PKCS#8", bits: 2048, fpOf: "rsa2048-pkcs8.pem", data: func(t testing.TB) []byte {
			return encryptFixture(t, "rsa2048-pkcs8.pem", pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: maxPBKDF2Iterations, HMACHash: crypto.SHA1})
		}},
		{name: "encrypted PKCS#8 one PBKDF2 iteration over the cap", password: testPassword, wantErr: ErrUnsupportedKey, wantIn: "openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 2048", data: func(t testing.TB) []byte {
			return encryptFixture(t, "rsa2048-pkcs8.pem", pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: maxPBKDF2Iterations + 1, HMACHash: crypto.SHA256})
		}},
		{name: "encrypted PKCS#8 10,000,000 PBKDF2 iterations", password: testPassword, wantErr: ErrUnsupportedKey, wantIn: "10000000 PBKDF2 iterations", data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8.pem", func(_ *fxEncryptedKeyInfo, params *fxPBES2Params) {
				editPBKDF2(t, params, func(p *fxPBKDF2Params) { p.Iterations = 10_000_000 })
			})
		}},
		{name: "scrypt p=16 (16 times openssl's work)", password: testPassword, wantErr: ErrUnsupportedKey, wantIn: "openssl pkcs8 -topk8", skip: missing(scryptErr, "scrypt"), data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8-scrypt.pem", func(_ *fxEncryptedKeyInfo, params *fxPBES2Params) {
				editScrypt(t, params, func(p *fxScryptParams) { p.P = 16 })
			})
		}},
		{name: "encrypted PKCS#8 zero PBKDF2 iterations", password: testPassword, wantErr: ErrUnsupportedKey, data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8.pem", func(_ *fxEncryptedKeyInfo, params *fxPBES2Params) {
				editPBKDF2(t, params, func(p *fxPBKDF2Params) { p.Iterations = 0 })
			})
		}},
		{name: "scrypt N=2^30 (1 TiB of memory)", password: testPassword, wantErr: ErrUnsupportedKey, skip: missing(scryptErr, "scrypt"), data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8-scrypt.pem", func(_ *fxEncryptedKeyInfo, params *fxPBES2Params) {
				editScrypt(t, params, func(p *fxScryptParams) { p.N = 1 << 30 })
			})
		}},
		{name: "scrypt p=2^20 (gigabytes of B)", password: testPassword, wantErr: ErrUnsupportedKey, skip: missing(scryptErr, "scrypt"), data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8-scrypt.pem", func(_ *fxEncryptedKeyInfo, params *fxPBES2Params) {
				editScrypt(t, params, func(p *fxScryptParams) { p.P = 1 << 20 })
			})
		}},
		{name: "scrypt p=16000 (minutes of work inside the memory cap)", password: testPassword, wantErr: ErrUnsupportedKey, skip: missing(scryptErr, "scrypt"), data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8-scrypt.pem", func(_ *fxEncryptedKeyInfo, params *fxPBES2Params) {
				editScrypt(t, params, func(p *fxScryptParams) { p.P = 16000 })
			})
		}},
		{name: "scrypt N=2^62, r=2^40 (products overflow)", password: testPassword, wantErr: ErrUnsupportedKey, skip: missing(scryptErr, "scrypt"), data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8-scrypt.pem", func(_ *fxEncryptedKeyInfo, params *fxPBES2Params) {
				editScrypt(t, params, func(p *fxScryptParams) { p.N, p.R = 1<<62, 1<<40 })
			})
		}},
		{name: "scrypt N not a power of two", password: testPassword, wantErr: ErrUnsupportedKey, skip: missing(scryptErr, "scrypt"), data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8-scrypt.pem", func(_ *fxEncryptedKeyInfo, params *fxPBES2Params) {
				editScrypt(t, params, func(p *fxScryptParams) { p.N = 3000 })
			})
		}},
		{name: "encrypted PKCS#8 with AES-GCM scheme", password: testPassword, wantErr: ErrUnsupportedKey, data: func(t testing.TB) []byte {
			return forgeEncryptedPKCS8(t, "rsa2048-enc-pkcs8.pem", func(_ *fxEncryptedKeyInfo, params *fxPBES2Params) {
				params.Cipher.Algorithm = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}
			})
		}},
		{name: "ENCRYPTED PRIVATE KEY holding plain PKCS#8", password: testPassword, wantErr: ErrUnsupportedKey, data: func(t testing.TB) []byte {
			return rePEM("ENCRYPTED PRIVATE KEY", pemDER(t, "rsa2048-pkcs8.pem"))
		}},
		{name: "ENCRYPTED PRIVATE KEY holding junk", password: testPassword, wantErr: ErrUnsupportedKey, data: func(testing.TB) []byte {
			return rePEM("ENCRYPTED PRIVATE KEY", []byte("definitely not DER"))
		}},

		// Damaged legacy encrypted PEM.
		{name: "legacy PEM with malformed DEK-Info", password: testPassword, wantErr: ErrUnsupportedKey, data: func(t testing.TB) []byte {
			return regexp.MustCompile(`DEK-Info: AES-256-CBC,[0-9A-F]+`).ReplaceAll(readFixture(t, "rsa2048-enc-legacy-aes256.pem"), []byte("DEK-Info: AES-256-CBC,XYZ"))
		}},
		{name: "legacy PEM ciphertext not whole blocks", password: testPassword, wantErr: ErrUnsupportedKey, data: func(t testing.TB) []byte {
			block, _ := pem.Decode(readFixture(t, "rsa2048-enc-legacy-aes256.pem"))
			block.Bytes = block.Bytes[:len(block.Bytes)-3]
			return pem.EncodeToMemory(block)
		}},

		// Not a usable PEM private key at all.
		{name: "nil", data: func(testing.TB) []byte { return nil }, wantErr: ErrNotPEM},
		{name: "empty", data: func(testing.TB) []byte { return []byte{} }, wantErr: ErrNotPEM},
		{name: "whitespace", data: func(testing.TB) []byte { return []byte(" \n\t\r\n") }, wantErr: ErrNotPEM},
		{name: "garbage text", data: func(testing.TB) []byte { return []byte("hello, this is not a key\n") }, wantErr: ErrNotPEM},
		{name: "raw DER without PEM armour", data: func(t testing.TB) []byte { return pemDER(t, "rsa2048-pkcs8.pem") }, wantErr: ErrNotPEM},
		{name: "base64 body without BEGIN/END", wantErr: ErrNotPEM, data: func(t testing.TB) []byte {
			lines := strings.Split(string(readFixture(t, "rsa2048-pkcs1.pem")), "\n")
			return []byte(strings.Join(lines[1:len(lines)-2], "\n"))
		}},
		{name: "truncated PEM (no END line)", wantErr: ErrNotPEM, data: func(t testing.TB) []byte {
			d := readFixture(t, "rsa2048-pkcs1.pem")
			return d[:len(d)/2]
		}},
		{name: "truncated encrypted PEM", password: testPassword, wantErr: ErrNotPEM, data: func(t testing.TB) []byte {
			d := readFixture(t, "rsa2048-enc-pkcs8.pem")
			return d[:len(d)-40]
		}},
		{name: "corrupted base64 body", wantErr: ErrNotPEM, data: func(t testing.TB) []byte {
			d := bytes.Clone(readFixture(t, "rsa2048-pkcs1.pem"))
			d[len(d)/2] = '!'
			return d
		}},
		{name: "END label does not match BEGIN", wantErr: ErrNotPEM, data: func(t testing.TB) []byte {
			return bytes.Replace(readFixture(t, "rsa2048-pkcs8.pem"), []byte("END PRIVATE KEY"), []byte("END RSA PRIVATE KEY"), 1)
		}},
		{name: "RSA PRIVATE KEY holding PKCS#8", wantErr: ErrUnsupportedKey, data: func(t testing.TB) []byte {
			return rePEM("RSA PRIVATE KEY", pemDER(t, "rsa2048-pkcs8.pem"))
		}},
		{name: "PRIVATE KEY holding PKCS#1", wantErr: ErrUnsupportedKey, data: func(t testing.TB) []byte {
			return rePEM("PRIVATE KEY", pemDER(t, "rsa2048-pkcs1.pem"))
		}},
		{name: "RSA PRIVATE KEY holding junk", wantErr: ErrUnsupportedKey, data: func(testing.TB) []byte {
			return rePEM("RSA PRIVATE KEY", bytes.Repeat([]byte{0x30, 0x82}, 40))
		}},
		{name: "PRIVATE KEY with its DER cut short", wantErr: ErrUnsupportedKey, data: func(t testing.TB) []byte {
			der := pemDER(t, "rsa2048-pkcs8.pem")
			return rePEM("PRIVATE KEY", der[:len(der)-100])
		}},
		{name: "PKCS#1 with a mismatched private exponent", wantErr: ErrUnsupportedKey, data: func(t testing.TB) []byte {
			k, err := x509.ParsePKCS1PrivateKey(pemDER(t, "rsa2048-pkcs1.pem"))
			if err != nil {
				t.Fatal(err)
			}
			k.D = new(big.Int).Add(k.D, big.NewInt(2))
			k.Precomputed = rsa.PrecomputedValues{}
			return rePEM("RSA PRIVATE KEY", fxMarshalPKCS1Raw(t, k))
		}},

		// Sizes.
		{name: "RSA 1024", file: "rsa1024-pkcs1.pem", wantErr: ErrKeyTooSmall},

		// A public exponent of 3 (openssl genrsa -3).
		{name: "RSA e=3", file: "rsa2048-e3-pkcs8.pem", wantErr: ErrWeakExponent},
		{name: "RSA 8200", file: "rsa8200-pkcs8.pem", wantErr: ErrKeyTooLarge},

		// Not RSA.
		{name: "EC P-256 PKCS#8", file: "ec-p256-pkcs8.pem", wantErr: ErrNotRSA},
		{name: "EC P-256 SEC1 with EC PARAMETERS", file: "ec-p256-sec1.pem", wantErr: ErrNotRSA},
		{name: "Ed25519 PKCS#8", file: "ed25519-pkcs8.pem", wantErr: ErrNotRSA},
		{name: "DSA traditional", file: "dsa2048-traditional.pem", wantErr: ErrNotRSA},
		{name: "DSA PKCS#8", file: "dsa2048-pkcs8.pem", wantErr: ErrUnsupportedKey},
		{name: "RSA-PSS PKCS#8", file: "rsapss2048-pkcs8.pem", wantErr: ErrUnsupportedKey},
		{name: "OpenSSH private key", file: "rsa2048-openssh.key", wantErr: ErrUnsupportedKey, skip: missing(sshErr, "OpenSSH")},

		// Public halves.
		{name: "public key (SubjectPublicKeyInfo)", file: "rsa2048-public.pem", wantErr: ErrPublicKey},
		{name: "public key (PKCS#1)", file: "rsa2048-public-pkcs1.pem", wantErr: ErrPublicKey},
		{name: "certificate", file: "rsa2048-cert.pem", wantErr: ErrPublicKey},
	}

	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("duplicate case name %q", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.skip != "" {
				t.Skip(c.skip)
			}
			var input []byte
			switch {
			case c.data != nil:
				input = c.data(t)
			case c.file != "":
				input = readFixture(t, c.file)
			default:
				t.Fatal("case has neither file nor data")
			}
			var pw []byte
			if c.password != "" {
				pw = []byte(c.password)
			}
			key, err := ParsePrivateKey(input, pw)

			if c.wantErr != nil {
				if err == nil {
					t.Fatalf("ParsePrivateKey succeeded (format %q, %d bits), want %v", key.Format, key.Bits(), c.wantErr)
				}
				if key != nil {
					t.Errorf("ParsePrivateKey returned a key with error %v", err)
				}
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("error %q, want errors.Is %q", err, c.wantErr)
				}
				if !strings.Contains(err.Error(), c.wantIn) {
					t.Errorf("error %q does not contain %q", err, c.wantIn)
				}
				assertNoSecretsInError(t, err, input, c.password)
				assertNoSecretsInError(t, err, input, testPassword)
				return
			}

			if err != nil {
				t.Fatalf("ParsePrivateKey: %v", err)
			}
			if key.Format != c.format {
				t.Errorf("Format = %q, want %q", key.Format, c.format)
			}
			if key.Bits() != c.bits {
				t.Errorf("Bits = %d, want %d", key.Bits(), c.bits)
			}
			fpOf := c.fpOf
			if fpOf == "" {
				fpOf = c.file
			}
			if want := opensslFingerprint(t, fpOf); key.Fingerprint() != want {
				t.Errorf("Fingerprint = %s, openssl says %s", key.Fingerprint(), want)
			}
			assertPublicKeyPEM(t, key)
		})
	}
}

// encryptFixture re-encrypts a plain PKCS#8 fixture with the given PBKDF2
// parameters and testPassword, AES-256-CBC, as openssl pkcs8 -topk8 -v2
// aes-256-cbc -iter N would.
func encryptFixture(t testing.TB, file string, kdf pkcs8.PBKDF2Opts) []byte {
	t.Helper()
	k, err := x509.ParsePKCS8PrivateKey(pemDER(t, file))
	if err != nil {
		t.Fatal(err)
	}
	der, err := pkcs8.MarshalPrivateKey(k, []byte(testPassword), &pkcs8.Opts{Cipher: pkcs8.AES256CBC, KDFOpts: kdf})
	if err != nil {
		t.Fatal(err)
	}
	return rePEM("ENCRYPTED PRIVATE KEY", der)
}

// fxMarshalPKCS1Raw encodes k as PKCS#1 without the consistency checks
// x509.MarshalPKCS1PrivateKey may apply, so that broken keys can be built.
func fxMarshalPKCS1Raw(t testing.TB, k *rsa.PrivateKey) []byte {
	t.Helper()
	type pkcs1 struct {
		Version               int
		N                     *big.Int
		E                     int
		D, P, Q, Dp, Dq, Qinv *big.Int
	}
	dp := new(big.Int).Mod(k.D, new(big.Int).Sub(k.Primes[0], big.NewInt(1)))
	dq := new(big.Int).Mod(k.D, new(big.Int).Sub(k.Primes[1], big.NewInt(1)))
	qinv := new(big.Int).ModInverse(k.Primes[1], k.Primes[0])
	return mustMarshal(t, pkcs1{N: k.N, E: k.E, D: k.D, P: k.Primes[0], Q: k.Primes[1], Dp: dp, Dq: dq, Qinv: qinv})
}

// assertPublicKeyPEM checks PublicKeyPEM parses back to the key's public half
// and that Fingerprint is the SHA-256 of its DER.
func assertPublicKeyPEM(t testing.TB, key *Key) {
	t.Helper()
	block, rest := pem.Decode([]byte(key.PublicKeyPEM()))
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("PublicKeyPEM is not one PUBLIC KEY block: %q", key.PublicKeyPEM())
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatalf("PublicKeyPEM does not parse: %v", err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok || !rsaPub.Equal(key.PublicKey()) {
		t.Fatalf("PublicKeyPEM holds %T, not the key's public half", pub)
	}
	sum := sha256.Sum256(block.Bytes)
	if got := hex.EncodeToString(sum[:]); got != key.Fingerprint() {
		t.Errorf("Fingerprint %s is not sha256(PublicKeyPEM DER) %s", key.Fingerprint(), got)
	}
}

func TestGenerateKey(t *testing.T) {
	t.Parallel()
	for _, bits := range []int{2048, 3072, 4096} {
		t.Run("bits="+strconv.Itoa(bits), func(t *testing.T) {
			t.Parallel()
			if bits == 4096 && testing.Short() {
				t.Skip("4096-bit generation is slow under -short")
			}
			key, err := GenerateKey(bits)
			if err != nil {
				t.Fatalf("GenerateKey(%d): %v", bits, err)
			}
			if key.Bits() != bits || key.Format != "generated" {
				t.Fatalf("got %d bits, format %q", key.Bits(), key.Format)
			}
			assertPublicKeyPEM(t, key)
			back, err := ParsePrivateKey(key.MarshalPKCS8PEM(), nil)
			if err != nil || !back.Equal(key) {
				t.Fatalf("MarshalPKCS8PEM does not round trip: %v", err)
			}
		})
	}
	for _, bits := range []int{1024, 5000, 0, -1, 2047, 8192} {
		t.Run("rejects="+strconv.Itoa(bits), func(t *testing.T) {
			key, err := GenerateKey(bits)
			if err == nil || key != nil {
				t.Fatalf("GenerateKey(%d) = %v, %v; want an error", bits, key, err)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(bits)) {
				t.Errorf("error %q does not name the size asked for", err)
			}
		})
	}
}

func TestNewKey(t *testing.T) {
	t.Parallel()
	if _, err := NewKey(nil, "x"); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("NewKey(nil) = %v, want ErrUnsupportedKey", err)
	}
	base, err := x509.ParsePKCS1PrivateKey(pemDER(t, "rsa2048-pkcs1.pem"))
	if err != nil {
		t.Fatal(err)
	}

	// A hand-built key without CRT values is completed, not refused.
	bare := &rsa.PrivateKey{PublicKey: base.PublicKey, D: base.D, Primes: base.Primes}
	key, err := NewKey(bare, "hand-built")
	if err != nil {
		t.Fatalf("NewKey(bare): %v", err)
	}
	if bare.Precomputed.Dp == nil {
		t.Error("NewKey did not precompute the CRT values")
	}
	if key.Fingerprint() != opensslFingerprint(t, "rsa2048-pkcs1.pem") || key.Format != "hand-built" {
		t.Errorf("fingerprint %s format %q", key.Fingerprint(), key.Format)
	}

	// An inconsistent key is refused.
	broken := &rsa.PrivateKey{PublicKey: base.PublicKey, D: new(big.Int).Add(base.D, big.NewInt(2)), Primes: base.Primes}
	if _, err := NewKey(broken, "x"); err == nil {
		t.Error("NewKey accepted a key whose D does not match")
	}

	// Equal.
	other, err := ParsePrivateKey(readFixture(t, "rsa2048-pkcs8.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		a, b *Key
		want bool
	}{
		{"same key, different source", key, mustParse(t, "rsa2048-pkcs1.pem", ""), true},
		{"different keys", key, other, false},
		{"nil receiver", nil, key, false},
		{"nil argument", key, nil, false},
	} {
		if got := c.a.Equal(c.b); got != c.want {
			t.Errorf("%s: Equal = %v, want %v", c.name, got, c.want)
		}
	}
}

func mustParse(t testing.TB, fixture, password string) *Key {
	t.Helper()
	var pw []byte
	if password != "" {
		pw = []byte(password)
	}
	key, err := ParsePrivateKey(readFixture(t, fixture), pw)
	if err != nil {
		t.Fatalf("parsing %s: %v", fixture, err)
	}
	return key
}

func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	key := mustParse(t, "rsa2048-enc-legacy-aes256.pem", testPassword)

	plain := key.MarshalPKCS8PEM()
	if !bytes.HasPrefix(plain, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Fatalf("MarshalPKCS8PEM: %.40q", plain)
	}
	back, err := ParsePrivateKey(plain, nil)
	if err != nil || !back.Equal(key) || back.Format != "PKCS#8" || back.Fingerprint() != key.Fingerprint() {
		t.Fatalf("PKCS#8 round trip: %v", err)
	}

	enc, err := key.MarshalEncryptedPKCS8PEM([]byte(testPassword))
	if err != nil {
		t.Fatalf("MarshalEncryptedPKCS8PEM: %v", err)
	}
	if !bytes.HasPrefix(enc, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")) {
		t.Fatalf("MarshalEncryptedPKCS8PEM: %.40q", enc)
	}
	if bytes.Contains(enc, []byte(testPassword)) {
		t.Fatal("the encrypted PEM contains the password")
	}
	for _, c := range []struct {
		name     string
		password string
		wantErr  error
	}{
		{"right password", testPassword, nil},
		{"no password", "", ErrPasswordRequired},
		{"wrong password", wrongPassword, ErrWrongPassword},
	} {
		var pw []byte
		if c.password != "" {
			pw = []byte(c.password)
		}
		back, err := ParsePrivateKey(enc, pw)
		if !errors.Is(err, c.wantErr) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.wantErr)
			continue
		}
		if c.wantErr == nil && (!back.Equal(key) || back.Format != "encrypted PKCS#8") {
			t.Errorf("%s: got a different key (format %q)", c.name, back.Format)
		}
	}
	if _, err := key.MarshalEncryptedPKCS8PEM(nil); err == nil {
		t.Error("MarshalEncryptedPKCS8PEM(nil) did not fail")
	}
	if _, err := key.MarshalEncryptedPKCS8PEM([]byte{}); err == nil {
		t.Error("MarshalEncryptedPKCS8PEM(empty) did not fail")
	}
	enc2, err := key.MarshalEncryptedPKCS8PEM([]byte(testPassword))
	if err != nil || bytes.Equal(enc, enc2) {
		t.Errorf("two encryptions are identical (salt/IV reused?): %v", err)
	}

	// OpenSSL reads what we write, and agrees on the fingerprint.
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("no openssl on PATH")
	}
	dir := t.TempDir()
	for name, data := range map[string][]byte{"plain.pem": plain, "enc.pem": enc} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(openssl, "pkey", "-passin", "pass:"+testPassword, "-in", path, "-pubout", "-outform", "DER")
		cmd.Env = append(os.Environ(), "OPENSSL_CONF=/dev/null")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		der, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl pkey %s: %v: %s", name, err, stderr.Bytes())
		}
		sum := sha256.Sum256(der)
		if got := hex.EncodeToString(sum[:]); got != key.Fingerprint() {
			t.Errorf("openssl fingerprint of %s = %s, Fingerprint() = %s", name, got, key.Fingerprint())
		}
	}
	// And rejects the wrong password, so the file really is encrypted.
	cmd := exec.Command(openssl, "pkey", "-passin", "pass:"+wrongPassword, "-in", filepath.Join(dir, "enc.pem"), "-noout")
	cmd.Env = append(os.Environ(), "OPENSSL_CONF=/dev/null")
	if err := cmd.Run(); err == nil {
		t.Error("openssl decrypted our encrypted PKCS#8 with the wrong password")
	}
}
