package sshserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/warrenmesh/warren/internal/atomicfile"
)

// HostKeyFile is the host key's file name in the state directory.
const HostKeyFile = "ssh_host_ed25519_key"

// LoadHostKey returns the host key kept in dir, generating an ed25519 key
// there (mode 0600) the first time.
func LoadHostKey(dir string) (ssh.Signer, error) {
	path := filepath.Join(dir, HostKeyFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate the SSH host key: %w", err)
		}
		block, err := ssh.MarshalPrivateKey(priv, "warrend ssh host key")
		if err != nil {
			return nil, fmt.Errorf("encode the SSH host key: %w", err)
		}
		data = pem.EncodeToMemory(block)
		if err := atomicfile.Write(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("save the SSH host key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read the SSH host key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("parse the SSH host key %s: %w (remove it to make a new one)", path, err)
	}
	return signer, nil
}
