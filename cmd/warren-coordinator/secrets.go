package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/keyring"
	"github.com/warrenmesh/warren/coordinator/store"
)

// secretsCmd runs "secrets rotate": it adds a new key to the key ring that
// seals refresh tokens and TOTP secrets in the database, seals every
// stored value again with it, then drops the old keys (unless --keep-old).
// It works offline, on a stopped coordinator's state directory: a running
// coordinator holds the ring in memory and would go on sealing with, and
// failing to open values under, the keys it knew at start.
func secretsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return errors.New("usage: warren-coordinator secrets rotate [--state-dir DIR] [--store URL] [--keep-old]")
	}
	fs := flag.NewFlagSet("secrets rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeURL, stateDir := storeFlags(fs, "the stopped coordinator's state directory (default $WARREN_STATE_DIR, else "+defaultStateDir+")")
	keepOld := fs.Bool("keep-old", false, "keep the old keys in the ring (default: drop them once every value is sealed again)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("secrets rotate: unexpected argument %q", fs.Arg(0))
	}
	if running(filepath.Join(*stateDir, "admin.sock")) {
		return fmt.Errorf("secrets rotate: the coordinator in %s is running (its admin socket answers); stop it, rotate, then start it again", *stateDir)
	}
	ringPath := filepath.Join(*stateDir, coordinator.SecretsKeyFile)
	ring, err := keyring.Load(ringPath)
	if err != nil {
		return fmt.Errorf("secrets rotate: %w (has the coordinator run with --state-dir %s?)", err, *stateDir)
	}
	// The new key goes into the file first: if anything below fails, the
	// ring still opens every value, and the next start seals them again.
	rotated := ring.Rotate()
	if err := rotated.Save(ringPath); err != nil {
		return fmt.Errorf("secrets rotate: %w", err)
	}
	// Opening the store with the rotated ring seals every value not sealed
	// with its newest key, in one transaction.
	st, err := store.OpenURL(ctx, storeURL(), store.Options{Secrets: rotated})
	if err != nil {
		return fmt.Errorf("secrets rotate: key added, but the stored secrets were not sealed again (the next start will): %w", err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("secrets rotate: %w", err)
	}
	final := rotated
	if !*keepOld {
		final = rotated.DropOld()
		if err := final.Save(ringPath); err != nil {
			return fmt.Errorf("secrets rotate: every secret is sealed with the new key, but dropping the old keys failed: %w", err)
		}
	}
	ids := final.IDs()
	fmt.Fprintf(stdout, "%s: every stored secret is sealed with the new key %d; keys in the ring: %v\n", ringPath, ids[len(ids)-1], ids)
	return nil
}

// running reports whether a coordinator answers on the admin socket.
func running(sock string) bool {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
