package rpc

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Bounds of a cluster secret, after surrounding white space is trimmed.
const (
	MinSecretSize = 16
	MaxSecretSize = 4096
)

// ReadSecretFile reads the cluster secret from path: the file's contents
// without surrounding white space (so `head -c 32 /dev/urandom | base64 >
// FILE` makes one). It refuses a file that group or others may access, or
// that is not a regular file, and a secret shorter than MinSecretSize or
// longer than MaxSecretSize.
func ReadSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read secret file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read secret file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secret file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secret file %s has mode %04o, so group or others may access it: run chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 2*MaxSecretSize+1))
	if err != nil {
		return nil, fmt.Errorf("read secret file %s: %w", path, err)
	}
	secret := bytes.TrimSpace(data)
	switch {
	case len(secret) < MinSecretSize:
		return nil, fmt.Errorf("secret file %s holds %d bytes, want at least %d: make one with 'head -c 32 /dev/urandom | base64 > %s'",
			path, len(secret), MinSecretSize, path)
	case len(secret) > MaxSecretSize:
		return nil, fmt.Errorf("secret file %s holds more than %d bytes: is it the right file?", path, MaxSecretSize)
	}
	return secret, nil
}

// CreateSecretFile writes a new random secret (32 bytes, hex) to path with
// mode 0600 and returns it. It never replaces an existing file.
func CreateSecretFile(path string) ([]byte, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("create secret file %s: %w", path, err)
	}
	secret := []byte(hex.EncodeToString(raw[:]))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create secret file: %w", err)
	}
	if _, err := f.Write(append(secret, '\n')); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("write secret file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("write secret file %s: %w", path, err)
	}
	return secret, nil
}

// LoadOrCreateSecretFile reads the secret in path, creating the file with
// a new random secret first if there is none; created says which.
func LoadOrCreateSecretFile(path string) (secret []byte, created bool, err error) {
	secret, err = CreateSecretFile(path)
	if err == nil {
		return secret, true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, false, err
	}
	secret, err = ReadSecretFile(path)
	return secret, false, err
}
