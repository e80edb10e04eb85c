package cloud

import (
	"crypto/x509"
	"fmt"
	"os"
)

// CAPool returns the system roots plus the PEM certificates of a config's
// caFile. The file adds trust for a private endpoint; it must not replace
// the system roots, or the SDKs' own calls to public endpoints (STS for
// IRSA, SSO) would fail whenever caFile is set.
func CAPool(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("caFile: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("caFile %s: no PEM certificate in it", caFile)
	}
	return pool, nil
}
