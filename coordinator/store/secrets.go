package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/warrenmesh/warren/coordinator/keyring"
)

// Sealed columns: users' TOTP secrets and OpenID refresh tokens are sealed
// with the store's Sealer, each bound (additional data) to its column and
// user ID, so a value copied to another row or column does not open.
var sealedColumns = []string{"totp_secret", "refresh_token"}

func sealedAD(column string, id UserID) []byte {
	return fmt.Appendf(nil, "warren users.%s %d", column, id)
}

// seal returns v as it is stored in column of user id.
func (q queries) seal(column string, id UserID, v string) (string, error) {
	if v == "" || q.sec == nil {
		return v, nil
	}
	sealed, err := q.sec.Seal([]byte(v), sealedAD(column, id))
	if err != nil {
		return "", fmt.Errorf("user %d: seal %s: %w", id, column, err)
	}
	return sealed, nil
}

// open returns the value stored as v in column of user id. A plaintext
// from before values were sealed is returned as it is (OpenWith seals
// them all); a sealed value without a Sealer is an error, never handed out
// as the secret.
func (q queries) open(column string, id UserID, v string) (string, error) {
	if v == "" {
		return v, nil
	}
	if q.sec == nil {
		if strings.HasPrefix(v, keyring.Prefix) {
			return "", fmt.Errorf("user %d: %s is sealed and the store has no key ring", id, column)
		}
		return v, nil
	}
	if !q.sec.Sealed(v) {
		return v, nil
	}
	plain, err := q.sec.Open(v, sealedAD(column, id))
	if err != nil {
		return "", fmt.Errorf("user %d: %s: %w", id, column, err)
	}
	return string(plain), nil
}

// openUser opens u's sealed fields in place.
func (q queries) openUser(u *User) (err error) {
	if u.TOTPSecret, err = q.open("totp_secret", u.ID, u.TOTPSecret); err != nil {
		return err
	}
	u.RefreshToken, err = q.open("refresh_token", u.ID, u.RefreshToken)
	return err
}

// sealUser returns u's TOTP secret and refresh token as stored for user id.
func (q queries) sealUser(id UserID, u User) (totp, refresh string, err error) {
	if totp, err = q.seal("totp_secret", id, u.TOTPSecret); err != nil {
		return "", "", err
	}
	refresh, err = q.seal("refresh_token", id, u.RefreshToken)
	return totp, refresh, err
}

// resealSecrets seals, with the newest key, every stored secret that is in
// plain text (from before secrets were sealed) or sealed with an older key
// (after a key ring rotation), in one transaction. It returns how many it
// sealed.
func (s *sqlStore) resealSecrets(ctx context.Context) (n int, err error) {
	type value struct {
		id     UserID
		column string
		stored string
	}
	err = s.Tx(ctx, func(qs Queries) error {
		n = 0
		q := qs.(queries)
		var stale []value
		rows, err := q.q.QueryContext(ctx, `SELECT id, totp_secret, refresh_token FROM users WHERE totp_secret != '' OR refresh_token != ''`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id UserID
			var totp, refresh string
			if err := rows.Scan(&id, &totp, &refresh); err != nil {
				return err
			}
			for i, v := range []string{totp, refresh} {
				if v != "" && !q.sec.Current(v) {
					stale = append(stale, value{id, sealedColumns[i], v})
				}
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, v := range stale {
			plain, err := q.open(v.column, v.id, v.stored)
			if err != nil {
				return err
			}
			sealed, err := q.seal(v.column, v.id, plain)
			if err != nil {
				return err
			}
			// column is one of sealedColumns, never input.
			if _, err := q.q.ExecContext(ctx, `UPDATE users SET `+v.column+` = ? WHERE id = ?`, sealed, v.id); err != nil {
				return err
			}
		}
		n = len(stale)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("seal stored secrets: %w", err)
	}
	return n, nil
}
