package cluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certLifetime outlives a long demo session (a day is not enough when a
// demo is left running overnight) while keeping leaked keys worthless soon.
const certLifetime = 7 * 24 * time.Hour

// clockSkew back-dates NotBefore so a certificate made a moment ago is not
// refused by a process whose clock reads a little earlier.
const clockSkew = time.Hour

type keyPair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

func newKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newCA(commonName string) (*keyPair, error) {
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return sign(tmpl, tmpl, key, key, keyPEM)
}

type leafSpec struct {
	subject  pkix.Name
	dnsNames []string
	ips      []net.IP
	usages   []x509.ExtKeyUsage
}

func (ca *keyPair) issue(spec leafSpec) (*keyPair, error) {
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      spec.subject,
		DNSNames:     spec.dnsNames,
		IPAddresses:  spec.ips,
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  spec.usages,
	}
	return sign(tmpl, ca.cert, ca.key, key, keyPEM)
}

// sign creates the certificate of key from tmpl, signed by parent's key
// (tmpl itself and key for a self-signed CA).
func sign(tmpl, parent *x509.Certificate, parentKey crypto.Signer, key *ecdsa.PrivateKey, keyPEM []byte) (*keyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("signing %s with %s: %w", tmpl.Subject.CommonName, parent.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  keyPEM,
	}, nil
}

func (ca *keyPair) serving(commonName string, dnsNames []string, ips []net.IP) (*keyPair, error) {
	return ca.issue(leafSpec{
		subject:  pkix.Name{CommonName: commonName},
		dnsNames: dnsNames,
		ips:      ips,
		usages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

func (ca *keyPair) client(commonName string, groups ...string) (*keyPair, error) {
	return ca.issue(leafSpec{
		subject: pkix.Name{CommonName: commonName, Organization: groups},
		usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// pki is every credential of one test cluster, in memory and on disk.
type pki struct {
	dir string

	clusterCA    *keyPair
	frontProxyCA *keyPair
	extensionCA  *keyPair
	apiserver    *keyPair
	admin        *keyPair
	frontProxy   *keyPair
	saKeyPEM     []byte
	saPubPEM     []byte
}

// The on-disk names, relative to pki.dir.
const (
	fileClusterCA        = "ca.crt"
	fileFrontProxyCA     = "front-proxy-ca.crt"
	fileExtensionCA      = "extension-ca.crt"
	fileAPIServerCert    = "apiserver.crt"
	fileAPIServerKey     = "apiserver.key"
	fileAdminCert        = "admin.crt"
	fileAdminKey         = "admin.key"
	fileFrontProxyCert   = "front-proxy-client.crt"
	fileFrontProxyKey    = "front-proxy-client.key"
	fileServiceAccountSK = "sa.key"
	fileServiceAccountPK = "sa.pub"
)

// serviceIP is the first address of serviceCIDR: kube-apiserver gives it to
// the kubernetes Service and expects it in its serving certificate.
const (
	serviceCIDR = "10.0.0.0/24"
	serviceIP   = "10.0.0.1"
)

func newPKI(dir string) (*pki, error) {
	var p pki
	var err error
	p.dir = dir
	if p.clusterCA, err = newCA("k8s-cloud-node-manager-test-ca"); err != nil {
		return nil, err
	}
	if p.frontProxyCA, err = newCA("k8s-cloud-node-manager-test-front-proxy-ca"); err != nil {
		return nil, err
	}
	if p.extensionCA, err = newCA("k8s-cloud-node-manager-test-extension-ca"); err != nil {
		return nil, err
	}
	p.apiserver, err = p.clusterCA.serving("kube-apiserver",
		[]string{
			"localhost",
			"kubernetes",
			"kubernetes.default",
			"kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local",
		},
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.ParseIP(serviceIP)})
	if err != nil {
		return nil, err
	}
	if p.admin, err = p.clusterCA.client("kubernetes-admin", "system:masters"); err != nil {
		return nil, err
	}
	// kube-apiserver's --requestheader-allowed-names names this CN: the
	// aggregator presents it to extension servers, which check it.
	if p.frontProxy, err = p.frontProxyCA.client("front-proxy-client"); err != nil {
		return nil, err
	}
	saKey, saKeyPEM, err := newKey()
	if err != nil {
		return nil, err
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, err
	}
	p.saKeyPEM = saKeyPEM
	p.saPubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER})
	return &p, p.write()
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

func (p *pki) write() error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	files := []struct {
		name   string
		data   []byte
		secret bool
	}{
		{fileClusterCA, p.clusterCA.certPEM, false},
		{fileFrontProxyCA, p.frontProxyCA.certPEM, false},
		{fileExtensionCA, p.extensionCA.certPEM, false},
		{fileAPIServerCert, p.apiserver.certPEM, false},
		{fileAPIServerKey, p.apiserver.keyPEM, true},
		{fileAdminCert, p.admin.certPEM, false},
		{fileAdminKey, p.admin.keyPEM, true},
		{fileFrontProxyCert, p.frontProxy.certPEM, false},
		{fileFrontProxyKey, p.frontProxy.keyPEM, true},
		{fileServiceAccountSK, p.saKeyPEM, true},
		{fileServiceAccountPK, p.saPubPEM, false},
	}
	for _, f := range files {
		mode := os.FileMode(0o644)
		if f.secret {
			mode = 0o600
		}
		if err := os.WriteFile(p.path(f.name), f.data, mode); err != nil {
			return err
		}
	}
	return nil
}
