#!/bin/sh
# Makes throwaway TLS material for the tests in directory $1 (created if
# needed), with the openssl command:
#   ca.pem ca.key            a test CA
#   cert.pem key.pem         server certificate from that CA for localhost and 127.0.0.1
#   conf/public.cert.pem     the same pair under the names spoold looks for in
#   conf/private.key.pem     a config directory
#   other-ca.pem             an unrelated CA (a client trusting only it must refuse)
#   wrongname.pem wrongname.key  from the test CA, but for other.invalid only
#   client.pem client.key    a client certificate from the test CA
# Keys are P-256: fast to make. Certificates are valid for two days.
set -eu
d=$1
mkdir -p "$d/conf"
cd "$d"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # ca NAME CN
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
}
leaf() { # leaf KEY CERT CN SAN EKU
    key "$1"
    openssl req -new -key "$1" -subj "/CN=$3" -out "$2.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$4" "$5" > "$2.ext"
    openssl x509 -req -in "$2.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$2.ext" -out "$2" 2>/dev/null
    rm -f "$2.csr" "$2.ext"
}
ca ca "spool test CA"
ca other-ca "unrelated test CA"
leaf key.pem cert.pem localhost "DNS:localhost,IP:127.0.0.1" serverAuth
leaf wrongname.key wrongname.pem other.invalid "DNS:other.invalid" serverAuth
leaf client.key client.pem "test client" "DNS:client.invalid" clientAuth
cp cert.pem conf/public.cert.pem
cp key.pem conf/private.key.pem
