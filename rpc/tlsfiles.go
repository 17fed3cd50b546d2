package rpc

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles names PEM files for TLS on the node port: a certificate and its
// key, and a CA bundle. All empty means no TLS.
type TLSFiles struct {
	Cert, Key, CA string
}

// Empty says whether no file is set.
func (f TLSFiles) Empty() bool { return f.Cert == "" && f.Key == "" && f.CA == "" }

// ServerConfig is the TLS configuration of a server: Cert and Key are
// required; with CA, clients must present a certificate it signed. It is
// nil when f is empty.
func (f TLSFiles) ServerConfig() (*tls.Config, error) {
	if f.Empty() {
		return nil, nil
	}
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("TLS on a server needs both a certificate and its key (--tls-cert and --tls-key)")
	}
	cfg, err := f.baseConfig()
	if err != nil {
		return nil, err
	}
	if cfg.RootCAs != nil {
		cfg.ClientCAs, cfg.RootCAs = cfg.RootCAs, nil
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientConfig is the TLS configuration of a client: with CA, the server's
// certificate must be signed by it (else by the system's roots); Cert and
// Key, if set, are presented to the server. It is nil when f is empty.
func (f TLSFiles) ClientConfig() (*tls.Config, error) {
	if f.Empty() {
		return nil, nil
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("a TLS client certificate needs its key and the other way round (--tls-cert and --tls-key)")
	}
	return f.baseConfig()
}

// baseConfig loads the files into a TLS 1.3 configuration (1.3, so that
// the authentication handshake can bind itself to the TLS session).
func (f TLSFiles) baseConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if f.Cert != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", f.Cert, f.Key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("read TLS CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA bundle %s holds no PEM certificate", f.CA)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
