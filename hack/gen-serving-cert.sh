#!/usr/bin/env bash
# Creates the serving certificate of k8s-cloud-node-manager for installs that
# do not let the chart or cert-manager do it (the plain manifests in
# config/deploy/, helm with tls.mode=existingSecret, a developer's server):
#
#   1. a CA and a serving certificate signed by it, for
#      <service>.<namespace>.svc (the name kube-apiserver verifies), the
#      other in-cluster forms of the Service name, localhost and 127.0.0.1;
#   2. unless --no-secret, the kubernetes.io/tls Secret the Deployment mounts
#      (tls.crt, tls.key, ca.crt);
#   3. unless --no-patch, the CA written into the APIService's caBundle.
#
#   hack/gen-serving-cert.sh                                   # plain manifests
#   hack/gen-serving-cert.sh --namespace ops --service cnm --secret cnm-tls
#   hack/gen-serving-cert.sh --out-dir /tmp/cnm-dev --no-secret  # development
#
# Needs openssl, and kubectl for steps 2 and 3. The CA key is kept only in
# --out-dir (a fresh private temporary folder by default): nobody can issue
# another certificate kube-apiserver would trust once it is deleted. To renew,
# run the script again (new CA; the server reloads its certificate files and
# the APIService gets the new CA within seconds of each other).
set -euo pipefail

namespace=k8s-cloud-node-manager
service=k8s-cloud-node-manager
secret=k8s-cloud-node-manager-tls
apiservice=v1.infraops.michael.io
out_dir=""
days=825
make_secret=1
patch=1
kubectl=${KUBECTL:-kubectl}

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "gen-serving-cert: $*" >&2; exit 1; }

while (($#)); do
  case "$1" in
    --namespace) namespace=$2; shift 2 ;;
    --service) service=$2; shift 2 ;;
    --secret) secret=$2; shift 2 ;;
    --apiservice) apiservice=$2; shift 2 ;;
    --out-dir) out_dir=$2; shift 2 ;;
    --days) days=$2; shift 2 ;;
    --no-secret) make_secret=0; shift ;;
    --no-patch) patch=0; shift ;;
    -h | --help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 1 >&2 ;;
  esac
done

command -v openssl >/dev/null || die "openssl is not on PATH"
if ((make_secret || patch)); then
  command -v "${kubectl}" >/dev/null || die "kubectl is not on PATH (or use --no-secret --no-patch)"
fi

if [[ -z "${out_dir}" ]]; then
  out_dir=$(mktemp -d)
fi
mkdir -p "${out_dir}"
chmod 700 "${out_dir}"
umask 077

svc_dns="${service}.${namespace}.svc"
cat >"${out_dir}/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = ${svc_dns}
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[serving]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:${service}, DNS:${service}.${namespace}, DNS:${svc_dns}, DNS:${svc_dns}.cluster.local, DNS:localhost, IP:127.0.0.1
authorityKeyIdentifier = keyid
EOF

# ECDSA P-256: small, fast, accepted by every Kubernetes and Go TLS stack.
openssl ecparam -name prime256v1 -genkey -noout -out "${out_dir}/ca.key" 2>/dev/null
openssl req -x509 -new -key "${out_dir}/ca.key" -days "${days}" -sha256 \
  -subj "/CN=${service}-ca" -config "${out_dir}/openssl.cnf" -extensions ca \
  -out "${out_dir}/ca.crt"
openssl ecparam -name prime256v1 -genkey -noout -out "${out_dir}/tls.key" 2>/dev/null
openssl req -new -key "${out_dir}/tls.key" -config "${out_dir}/openssl.cnf" -out "${out_dir}/tls.csr"
openssl x509 -req -in "${out_dir}/tls.csr" -CA "${out_dir}/ca.crt" -CAkey "${out_dir}/ca.key" \
  -CAcreateserial -days "${days}" -sha256 -extfile "${out_dir}/openssl.cnf" -extensions serving \
  -out "${out_dir}/tls.crt" 2>/dev/null
rm -f "${out_dir}/tls.csr" "${out_dir}/ca.srl"
openssl verify -CAfile "${out_dir}/ca.crt" "${out_dir}/tls.crt" >/dev/null ||
  die "the generated certificate does not verify against its CA"
echo "gen-serving-cert: wrote ca.crt, ca.key, tls.crt, tls.key to ${out_dir}" >&2

if ((make_secret)); then
  # create --dry-run | apply: creates the Secret or replaces its data.
  "${kubectl}" -n "${namespace}" create secret tls "${secret}" \
    --cert="${out_dir}/tls.crt" --key="${out_dir}/tls.key" --dry-run=client -o json |
    "${kubectl}" -n "${namespace}" patch --local -f - --type merge \
      -p "{\"data\":{\"ca.crt\":\"$(base64 <"${out_dir}/ca.crt" | tr -d '\n')\"}}" -o json |
    "${kubectl}" apply -f - >&2
fi

if ((patch)); then
  if "${kubectl}" get apiservice "${apiservice}" >/dev/null 2>&1; then
    "${kubectl}" patch apiservice "${apiservice}" --type merge \
      -p "{\"spec\":{\"caBundle\":\"$(base64 <"${out_dir}/ca.crt" | tr -d '\n')\"}}" >&2
  else
    echo "gen-serving-cert: APIService ${apiservice} does not exist yet; apply the manifests, then run this again or patch spec.caBundle with base64 of ${out_dir}/ca.crt" >&2
  fi
fi
