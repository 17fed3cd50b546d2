package rpcflags

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/sheepblk/sheepblk/rpc"
)

// Flag names, for messages that tell a user what to set.
const (
	SecretFileFlag = "secret-file"
	TLSCertFlag    = "tls-cert"
	TLSKeyFlag     = "tls-key"
	TLSCAFlag      = "tls-ca"
)

// Security is the command line's choice of cluster secret and TLS files.
type Security struct {
	SecretFile string
	TLS        rpc.TLSFiles
}

// Role says which side of a connection a command is, for the flags' help.
type Role int

const (
	Client Role = iota
	Server
)

// Register adds the flags to fs.
func (s *Security) Register(fs *pflag.FlagSet, role Role) {
	fs.StringVar(&s.SecretFile, SecretFileFlag, "",
		"file holding the cluster secret (mode 0600); every node and client of the cluster needs the same one")
	if role == Server {
		fs.StringVar(&s.TLS.Cert, TLSCertFlag, "", "PEM certificate of the node port (turns TLS on; needs --"+TLSKeyFlag+")")
		fs.StringVar(&s.TLS.Key, TLSKeyFlag, "", "PEM private key of --"+TLSCertFlag)
		fs.StringVar(&s.TLS.CA, TLSCAFlag, "", "PEM CA bundle: clients must present a certificate it signed")
		return
	}
	fs.StringVar(&s.TLS.CA, TLSCAFlag, "", "PEM CA bundle that signed the nodes' certificates (turns TLS on)")
	fs.StringVar(&s.TLS.Cert, TLSCertFlag, "", "PEM client certificate, for nodes that require one (needs --"+TLSKeyFlag+")")
	fs.StringVar(&s.TLS.Key, TLSKeyFlag, "", "PEM private key of --"+TLSCertFlag)
}

// secret reads the secret file, if one is set.
func (s Security) secret() ([]byte, error) {
	if s.SecretFile == "" {
		return nil, nil
	}
	secret, err := rpc.ReadSecretFile(s.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", SecretFileFlag, err)
	}
	return secret, nil
}

// ApplyServer sets the secret and TLS configuration of a server's options.
func (s Security) ApplyServer(o *rpc.ServerOptions) error {
	secret, err := s.secret()
	if err != nil {
		return err
	}
	cfg, err := s.TLS.ServerConfig()
	if err != nil {
		return fmt.Errorf("TLS: %w", err)
	}
	o.Secret, o.TLSConfig = secret, cfg
	return nil
}

// ApplyClient sets the secret and TLS configuration of a client's options.
func (s Security) ApplyClient(o *rpc.ClientOptions) error {
	secret, err := s.secret()
	if err != nil {
		return err
	}
	cfg, err := s.TLS.ClientConfig()
	if err != nil {
		return fmt.Errorf("TLS: %w", err)
	}
	o.Secret, o.TLSConfig = secret, cfg
	return nil
}
