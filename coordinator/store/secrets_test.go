package store

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/keyring"
)

const (
	plainTOTP    = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	plainRefresh = "refresh-token-of-ann-6a1f0c2e9b"
)

func openSealed(t *testing.T, url string, ring *keyring.Ring) Store {
	t.Helper()
	s, err := OpenURL(context.Background(), url, Options{Secrets: ring})
	must(t, err)
	return s
}

// rawColumns reads a user's secret columns as stored.
func rawColumns(t *testing.T, bk backend, url string, id UserID) (totp, refresh string) {
	t.Helper()
	db := bk.raw(t, url)
	must(t, db.QueryRowContext(context.Background(), `SELECT totp_secret, refresh_token FROM users WHERE id = ?`, id).Scan(&totp, &refresh))
	return totp, refresh
}

// fileBytes is the database file and its WAL, as a disk thief would read
// them.
func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// TestSecretsSealedAtRest is the regression test for refresh tokens and
// TOTP secrets stored in plain text: with a key ring, neither the database
// file nor its WAL holds them, while the store hands them back as they
// were.
func TestSecretsSealedAtRest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		path := bk.newURL(t)
		ring := keyring.New()
		s := openSealed(t, path, ring)
		ctx := context.Background()
		u, err := s.CreateUser(ctx, User{Name: "ann", Role: RoleMember, TOTPSecret: plainTOTP + "0"})
		must(t, err)
		u.TOTPSecret, u.RefreshToken = plainTOTP, plainRefresh
		must(t, s.UpdateUser(ctx, u))
		for _, get := range []func() (User, error){
			func() (User, error) { return s.GetUser(ctx, u.ID) },
			func() (User, error) { return s.GetUserByName(ctx, "ann") },
			func() (User, error) {
				var got User
				err := s.Tx(ctx, func(q Queries) error { var err error; got, err = q.GetUser(ctx, u.ID); return err })
				return got, err
			},
		} {
			got, err := get()
			if err != nil || got.TOTPSecret != plainTOTP || got.RefreshToken != plainRefresh {
				t.Fatalf("read back %q, %q, %v", got.TOTPSecret, got.RefreshToken, err)
			}
		}
		if users, err := s.ListUsers(ctx); err != nil || users[0].TOTPSecret != plainTOTP {
			t.Fatalf("listed %+v, %v", users, err)
		}
		must(t, s.Close()) // checkpoints the WAL into the file
		if bk.name == "sqlite" {
			raw := fileBytes(t, path)
			for _, secret := range []string{plainTOTP, plainRefresh} {
				if bytes.Contains(raw, []byte(secret)) {
					t.Fatalf("the database file holds %q in plain text", secret)
				}
			}
		}
		totp, refresh := rawColumns(t, bk, path, u.ID)
		if !strings.HasPrefix(totp, keyring.Prefix) || !strings.HasPrefix(refresh, keyring.Prefix) {
			t.Fatalf("stored %q, %q", totp, refresh)
		}
		// Without its key ring the store refuses to read them rather than
		// hand out ciphertext, or nothing, as the secret.
		s, err = OpenURL(ctx, path, Options{})
		must(t, err)
		defer s.Close()
		if got, err := s.GetUser(ctx, u.ID); err == nil {
			t.Fatalf("read sealed secrets without a key ring: %+v", got)
		}
	})
}

// TestSecretsBoundToRow: a value sealed for one user does not open when
// copied onto another's row (or into the other column).
func TestSecretsBoundToRow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		path := bk.newURL(t)
		s := openSealed(t, path, keyring.New())
		defer s.Close()
		ctx := context.Background()
		ann, err := s.CreateUser(ctx, User{Name: "ann", Role: RoleMember, TOTPSecret: plainTOTP, RefreshToken: plainRefresh})
		must(t, err)
		bob, err := s.CreateUser(ctx, User{Name: "bob", Role: RoleMember})
		must(t, err)
		for _, copySQL := range []string{
			`UPDATE users SET totp_secret = (SELECT totp_secret FROM users WHERE id = ?) WHERE id = ?`,
			`UPDATE users SET totp_secret = (SELECT refresh_token FROM users WHERE id = ?) WHERE id = ?`,
		} {
			must(t, s.Tx(ctx, func(q Queries) error {
				_, err := q.(queries).q.ExecContext(ctx, copySQL, ann.ID, bob.ID)
				return err
			}))
			if got, err := s.GetUser(ctx, bob.ID); err == nil {
				t.Fatalf("%s: bob's row opened with %q", copySQL, got.TOTPSecret)
			}
		}
	})
}

// TestSecretsRotation: a database sealed under the old key opens with the
// rotated ring (old and new keys), which seals every value again with the
// new key at open; after that the old key can go.
func TestSecretsRotation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		path := bk.newURL(t)
		old := keyring.New()
		s := openSealed(t, path, old)
		ctx := context.Background()
		u, err := s.CreateUser(ctx, User{Name: "ann", Role: RoleMember, TOTPSecret: plainTOTP, RefreshToken: plainRefresh})
		must(t, err)
		must(t, s.Close())

		rotated := old.Rotate()
		s = openSealed(t, path, rotated)
		if got, err := s.GetUser(ctx, u.ID); err != nil || got.TOTPSecret != plainTOTP || got.RefreshToken != plainRefresh {
			t.Fatalf("after rotation: %q %q %v", got.TOTPSecret, got.RefreshToken, err)
		}
		must(t, s.Close())
		totp, refresh := rawColumns(t, bk, path, u.ID)
		if !rotated.Current(totp) || !rotated.Current(refresh) {
			t.Fatalf("not sealed again with the new key: %q %q", totp, refresh)
		}
		s = openSealed(t, path, rotated.DropOld())
		defer s.Close()
		if got, err := s.GetUser(ctx, u.ID); err != nil || got.TOTPSecret != plainTOTP {
			t.Fatalf("with the new key only: %q %v", got.TOTPSecret, err)
		}
	})
}

// TestPlaintextSecretsSealedAtOpen: values stored in plain text by an
// older coordinator are sealed the first time the store opens with a key
// ring.
func TestPlaintextSecretsSealedAtOpen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		path := bk.newURL(t)
		ctx := context.Background()
		s, err := OpenURL(ctx, path, Options{})
		must(t, err)
		u, err := s.CreateUser(ctx, User{Name: "ann", Role: RoleMember, TOTPSecret: plainTOTP, RefreshToken: plainRefresh})
		must(t, err)
		must(t, s.Close())
		if totp, _ := rawColumns(t, bk, path, u.ID); totp != plainTOTP {
			t.Fatalf("stored without a ring: %q", totp)
		}
		ring := keyring.New()
		s = openSealed(t, path, ring)
		defer s.Close()
		if got, err := s.GetUser(ctx, u.ID); err != nil || got.TOTPSecret != plainTOTP || got.RefreshToken != plainRefresh {
			t.Fatalf("read back %q %q %v", got.TOTPSecret, got.RefreshToken, err)
		}
		totp, refresh := rawColumns(t, bk, path, u.ID)
		if !ring.Current(totp) || !ring.Current(refresh) {
			t.Fatalf("not sealed at open: %q %q", totp, refresh)
		}
	})
}
