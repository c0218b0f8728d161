package oidctest

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// userStore implements storage.UserStore over the configured users. It is
// written before the provider serves and only read afterwards.
type userStore struct {
	byID   map[string]*User
	byName map[string]*storage.User
}

func (s userStore) GetUserByID(id string) *storage.User {
	if u := s.byID[id]; u != nil {
		return s.byName[u.Username]
	}
	return nil
}

func (s userStore) GetUserByUsername(name string) *storage.User { return s.byName[name] }

func (s userStore) ExampleClientID() string { return "service" }

// testStorage is the example storage with test-controlled claims. Its
// users and assertClaims are written before the provider serves and only
// read afterwards.
type testStorage struct {
	*storage.Storage
	users userStore
	// assertClaims lists the clients whose ID tokens carry the userinfo
	// claims.
	assertClaims map[string]bool

	// rotate makes each sign-in end the refresh tokens the user's
	// earlier sign-ins at the same client got (Config.RotateRefreshTokens).
	rotate bool

	mu        sync.Mutex
	overrides map[string]override // by subject
	revoked   map[string]bool     // subjects whose sessions were revoked
	deleted   map[string]bool     // subjects the provider no longer knows
}

// override replaces a user's amr and groups for later logins.
type override struct{ amr, groups []string }

// claimsOf returns the amr and groups subject's tokens carry now.
func (s *testStorage) claimsOf(subject string) (amr, groups []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.overrides[subject]; ok {
		amr, groups = o.amr, o.groups
	} else if u := s.users.byID[subject]; u != nil {
		amr, groups = u.AMR, u.Groups
	}
	if amr == nil {
		amr = []string{"pwd"}
	}
	return amr, groups
}

// status reports whether Revoke or Delete was called for subject.
func (s *testStorage) status(subject string) (revoked, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revoked[subject], s.deleted[subject]
}

// CheckUsernamePassword refuses revoked and deleted accounts at the login
// form.
func (s *testStorage) CheckUsernamePassword(username, password, id string) error {
	if u := s.users.byName[username]; u != nil {
		if revoked, deleted := s.status(u.ID); revoked || deleted {
			return errors.New("this account is disabled")
		}
	}
	return s.Storage.CheckUsernamePassword(username, password, id)
}

// TokenRequestByRefreshToken refuses the refresh tokens of revoked and
// deleted accounts with invalid_grant (the provider's handler answers for
// deleted ones before this is reached; see Provider.Delete).
func (s *testStorage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	r, err := s.Storage.TokenRequestByRefreshToken(ctx, token)
	if err != nil {
		return r, err
	}
	if revoked, deleted := s.status(r.GetSubject()); revoked || deleted {
		return nil, op.ErrInvalidRefreshToken
	}
	return r, nil
}

// refreshOfDeleted reports whether r redeems a refresh token of a deleted
// account.
func (s *testStorage) refreshOfDeleted(r *http.Request) bool {
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "refresh_token" {
		return false
	}
	tr, err := s.Storage.TokenRequestByRefreshToken(r.Context(), r.PostForm.Get("refresh_token"))
	if err != nil {
		return false
	}
	_, deleted := s.status(tr.GetSubject())
	return deleted
}

// authRequest adds the user's amr and acr to an auth request.
type authRequest struct {
	*storage.AuthRequest
	s *testStorage
}

func (a *authRequest) GetAMR() []string {
	if !a.Done() {
		return nil
	}
	amr, _ := a.s.claimsOf(a.GetSubject())
	return amr
}

func (a *authRequest) GetACR() string {
	if u := a.s.users.byID[a.GetSubject()]; u != nil {
		return u.ACR
	}
	return ""
}

func (s *testStorage) wrap(r op.AuthRequest, err error) (op.AuthRequest, error) {
	if err != nil {
		return nil, err
	}
	return &authRequest{AuthRequest: r.(*storage.AuthRequest), s: s}, nil
}

// unwrap gives the example storage back its own request type.
func unwrap(r op.TokenRequest) op.TokenRequest {
	if a, ok := r.(*authRequest); ok {
		return a.AuthRequest
	}
	return r
}

func (s *testStorage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	return s.wrap(s.Storage.AuthRequestByID(ctx, id))
}

func (s *testStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	return s.wrap(s.Storage.AuthRequestByCode(ctx, code))
}

func (s *testStorage) CreateAccessToken(ctx context.Context, r op.TokenRequest) (string, time.Time, error) {
	return s.Storage.CreateAccessToken(ctx, unwrap(r))
}

// CreateAccessAndRefreshTokens issues tokens for a sign-in (current
// empty) or a refresh. The example storage always rotates at a refresh:
// the old refresh token stops working. With rotate, a sign-in also ends
// every refresh token the user had at the client, as Dex does.
func (s *testStorage) CreateAccessAndRefreshTokens(ctx context.Context, r op.TokenRequest, current string) (string, string, time.Time, error) {
	r = unwrap(r)
	if s.rotate && current == "" {
		if a, ok := r.(*storage.AuthRequest); ok {
			if err := s.Storage.TerminateSession(ctx, a.GetSubject(), a.ApplicationID); err != nil {
				return "", "", time.Time{}, err
			}
		}
	}
	return s.Storage.CreateAccessAndRefreshTokens(ctx, r, current)
}

// SetUserinfoFromRequest adds groups, an explicit false email_verified
// and the extra claims to the ID token.
func (s *testStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, r op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, r, scopes); err != nil {
		return err
	}
	s.addClaims(info, r.GetSubject())
	return nil
}

// addClaims adds what the example storage does not send: groups, a false
// email_verified (it omits false) and the user's extra claims.
func (s *testStorage) addClaims(info *oidc.UserInfo, subject string) {
	if _, groups := s.claimsOf(subject); groups != nil {
		info.AppendClaims("groups", groups)
	}
	u := s.users.byID[subject]
	if u == nil {
		return
	}
	if u.Email != "" && !u.EmailVerified {
		info.AppendClaims("email_verified", false)
	}
	for k, v := range u.Claims {
		info.AppendClaims(k, v)
	}
}

// assertingClient puts the userinfo claims into the ID token.
type assertingClient struct{ op.Client }

func (assertingClient) IDTokenUserinfoClaimsAssertion() bool { return true }

func (s *testStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err == nil && s.assertClaims[id] {
		c = assertingClient{c}
	}
	return c, err
}
