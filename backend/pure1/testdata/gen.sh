#!/bin/sh
# Regenerates the key fixtures of package pure1's tests with the real openssl
# CLI (and ssh-keygen when present). TEST-ONLY keys: never use them anywhere.
#
#   cd backend/pure1/testdata && ./gen.sh
#
# Needs OpenSSL 3 (genrsa -traditional, pkcs8 -scrypt). Every private key's
# public-key fingerprint, as openssl computes it, goes to fingerprints.txt:
#   <file> <sha256 of the DER SubjectPublicKeyInfo>
set -eu
cd "$(dirname "$0")"

PW=pure1-test-password
OPENSSL=${OPENSSL:-openssl}
export OPENSSL_CONF=/dev/null # no site config changing defaults

"$OPENSSL" version | grep -q '^OpenSSL 3\.' || {
	echo "gen.sh: needs OpenSSL 3 (found: $("$OPENSSL" version))" >&2
	exit 1
}

rm -f ./*.pem ./*.key fingerprints.txt

# What openssl genrsa writes, per OpenSSL version.
"$OPENSSL" genrsa -aes256 -passout "pass:$PW" -out rsa2048-enc-pkcs8.pem 2048              # OpenSSL 3: encrypted PKCS#8 (PBES2)
"$OPENSSL" genrsa -traditional -aes256 -passout "pass:$PW" -out rsa2048-enc-legacy-aes256.pem 2048 # OpenSSL 1.1: Proc-Type: 4,ENCRYPTED
"$OPENSSL" genrsa -traditional -des3 -passout "pass:$PW" -out rsa2048-enc-legacy-des3.pem 2048
"$OPENSSL" genrsa -traditional -out rsa2048-pkcs1.pem 2048                                  # BEGIN RSA PRIVATE KEY
"$OPENSSL" genrsa -out rsa2048-pkcs8.pem 2048                                               # BEGIN PRIVATE KEY
"$OPENSSL" genrsa -out rsa3072-pkcs8.pem 3072
"$OPENSSL" genrsa -traditional -out rsa4096-pkcs1.pem 4096
"$OPENSSL" genrsa -traditional -out rsa1024-pkcs1.pem 1024                                  # too small
"$OPENSSL" genrsa -3 -out rsa2048-e3-pkcs8.pem 2048                                        # public exponent 3: refused
# One modulus above MaxKeyBits (8192), to be rejected.
"$OPENSSL" genrsa -out rsa8200-pkcs8.pem 8200

# Other encryptions of the plain PKCS#8 key (same key, same fingerprint).
if "$OPENSSL" pkcs8 -topk8 -scrypt -in rsa2048-pkcs8.pem -passout "pass:$PW" -out rsa2048-enc-pkcs8-scrypt.pem 2>/dev/null; then :; else
	rm -f rsa2048-enc-pkcs8-scrypt.pem
	echo "gen.sh: openssl pkcs8 -topk8 -scrypt unsupported; skipping" >&2
fi
"$OPENSSL" pkcs8 -topk8 -v2 des3 -in rsa2048-pkcs8.pem -passout "pass:$PW" -out rsa2048-enc-pkcs8-des3.pem
# Encryptions Go cannot decrypt: they must say so, not blame the password.
"$OPENSSL" pkcs8 -topk8 -v1 PBE-SHA1-3DES -in rsa2048-pkcs8.pem -passout "pass:$PW" -out rsa2048-enc-pkcs8-pbes1.pem
"$OPENSSL" pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA512 -in rsa2048-pkcs8.pem -passout "pass:$PW" -out rsa2048-enc-pkcs8-sha512prf.pem
"$OPENSSL" rsa -traditional -camellia256 -in rsa2048-pkcs1.pem -passout "pass:$PW" -out rsa2048-enc-legacy-camellia256.pem

# Not RSA.
"$OPENSSL" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec-p256-pkcs8.pem
"$OPENSSL" ecparam -name prime256v1 -genkey -out ec-p256-sec1.pem                          # EC PARAMETERS + EC PRIVATE KEY
"$OPENSSL" genpkey -algorithm ED25519 -out ed25519-pkcs8.pem
"$OPENSSL" genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048 -out rsapss2048-pkcs8.pem
"$OPENSSL" genpkey -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048 -out dsa-params.tmp
"$OPENSSL" genpkey -paramfile dsa-params.tmp -out dsa2048-pkcs8.pem
"$OPENSSL" pkey -traditional -in dsa2048-pkcs8.pem -out dsa2048-traditional.pem
rm -f dsa-params.tmp

# Public halves, not private keys.
"$OPENSSL" pkey -in rsa2048-pkcs1.pem -pubout -out rsa2048-public.pem
"$OPENSSL" rsa -in rsa2048-pkcs1.pem -RSAPublicKey_out -out rsa2048-public-pkcs1.pem
"$OPENSSL" req -new -x509 -key rsa2048-pkcs1.pem -subj /CN=pure1-test -days 3650 -sha256 -out rsa2048-cert.pem

# OpenSSH's own format.
if command -v ssh-keygen >/dev/null 2>&1; then
	rm -f rsa2048-openssh.key rsa2048-openssh.key.pub
	ssh-keygen -q -t rsa -b 2048 -N '' -C pure1-test -f rsa2048-openssh.key
	rm -f rsa2048-openssh.key.pub
else
	echo "gen.sh: no ssh-keygen; skipping the OpenSSH key" >&2
fi

# Fingerprints of every RSA private key, computed by openssl.
for f in rsa*.pem; do
	case $f in *public* | *cert* | rsapss*) continue ;; esac
	printf '%s %s\n' "$f" "$("$OPENSSL" pkey -passin "pass:$PW" -in "$f" -pubout -outform DER | sha256sum | cut -d' ' -f1)"
done >fingerprints.txt
