package oidclogin

// A real OpenID Provider for the tests: zitadel/oidc's op package with the
// in-memory storage and login UI its module ships (example/server/storage
// and example/server/exampleop), imported as libraries. testStorage wraps
// the storage to add what the tests control: per-user groups, amr/acr and
// extra claims, and clients whose ID tokens carry the userinfo claims.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// opUser is a user of the test provider with the claims the tests control.
type opUser struct {
	storage.User
	groups []string
	amr    []string // sent after a successful password login; default ["pwd"]
	acr    string
	extra  map[string]any // more ID token claims
}

// testUsers are the provider's accounts (all with password "pw").
var testUsers = []opUser{
	{User: storage.User{ID: "sub-ann", Username: "ann", Email: "Ann@Example.com", EmailVerified: true,
		FirstName: "Ann", LastName: "A"}, groups: []string{"eng", "ops"}, extra: map[string]any{"hd": "example.com"}},
	{User: storage.User{ID: "sub-bob", Username: "bob", Email: "bob@example.com", EmailVerified: true},
		groups: []string{"eng"}, amr: []string{"pwd", "otp"}},
	{User: storage.User{ID: "sub-cat", Username: "cat", Email: "cat@example.com", EmailVerified: true},
		amr: []string{"pwd"}, acr: "phr"},
	{User: storage.User{ID: "sub-eve", Username: "eve", Email: "eve@evil.test", EmailVerified: true}},
	// The example storage omits a false email_verified; send it explicitly.
	{User: storage.User{ID: "sub-uma", Username: "uma", Email: "uma@example.com", EmailVerified: false},
		extra: map[string]any{"email_verified": false}},
}

const testPassword = "pw"

// userStore implements storage.UserStore over testUsers.
type userStore struct{ byID map[string]*opUser }

func newUserStore() userStore {
	s := userStore{byID: map[string]*opUser{}}
	for _, u := range testUsers {
		u.Password = testPassword
		s.byID[u.ID] = &u
	}
	return s
}

func (s userStore) GetUserByID(id string) *storage.User {
	if u := s.byID[id]; u != nil {
		return &u.User
	}
	return nil
}

func (s userStore) GetUserByUsername(name string) *storage.User {
	for _, u := range s.byID {
		if u.Username == name {
			return &u.User
		}
	}
	return nil
}

func (s userStore) ExampleClientID() string { return "service" }

// testStorage is the example storage with test-controlled claims. Its maps
// are written before the provider serves and only read afterwards.
type testStorage struct {
	*storage.Storage
	users userStore
	// assertClaims lists clients whose ID tokens carry email and profile
	// even though an access token is issued; the others get them from the
	// userinfo endpoint only (as the OIDC spec prefers).
	assertClaims map[string]bool

	mu        sync.Mutex
	overrides map[string]override // by subject
}

// override replaces a user's amr and groups for later logins.
type override struct{ amr, groups []string }

// override makes later logins of subject carry amr and groups.
func (s *testStorage) override(subject string, amr, groups []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.overrides == nil {
		s.overrides = map[string]override{}
	}
	s.overrides[subject] = override{amr, groups}
}

// claimsOf returns the amr and groups subject's tokens carry now.
func (s *testStorage) claimsOf(subject string) (amr, groups []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.overrides[subject]; ok {
		return o.amr, o.groups
	}
	if u := s.users.byID[subject]; u != nil {
		amr, groups = u.amr, u.groups
	}
	if amr == nil {
		amr = []string{"pwd"}
	}
	return amr, groups
}

// authRequest adds the test user's amr and acr to an auth request.
type authRequest struct {
	*storage.AuthRequest
	s    *testStorage
	user *opUser
}

func (a *authRequest) GetAMR() []string {
	if !a.Done() {
		return nil
	}
	amr, _ := a.s.claimsOf(a.GetSubject())
	return amr
}

func (a *authRequest) GetACR() string {
	if a.user == nil {
		return ""
	}
	return a.user.acr
}

func (s *testStorage) wrap(r op.AuthRequest, err error) (op.AuthRequest, error) {
	if err != nil {
		return nil, err
	}
	sr := r.(*storage.AuthRequest)
	return &authRequest{AuthRequest: sr, s: s, user: s.users.byID[sr.UserID]}, nil
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

func (s *testStorage) CreateAccessAndRefreshTokens(ctx context.Context, r op.TokenRequest, current string) (string, string, time.Time, error) {
	return s.Storage.CreateAccessAndRefreshTokens(ctx, unwrap(r), current)
}

// SetUserinfoFromRequest adds groups and extra claims to the ID token.
func (s *testStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, r op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, r, scopes); err != nil {
		return err
	}
	if _, groups := s.claimsOf(r.GetSubject()); groups != nil {
		info.AppendClaims("groups", groups)
	}
	if u := s.users.byID[r.GetSubject()]; u != nil {
		for k, v := range u.extra {
			info.AppendClaims(k, v)
		}
	}
	return nil
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

// Test clients of every provider.
const (
	clientWeb    = "warren"        // confidential, claims via userinfo
	clientSecret = "web-secret"    // its secret
	clientPublic = "warren-public" // public (PKCE only), claims in the ID token
	clientOther  = "other-app"     // another application at the same provider
)

// testOP is a running OpenID Provider.
type testOP struct {
	issuer  string
	storage *testStorage
	srv     *httptest.Server

	mu     sync.Mutex
	tamper func(idToken string) string // rewrites ID tokens in token responses
	hits   map[string]int              // requests by path
}

// hitCount returns how many requests the provider served at path.
func (o *testOP) hitCount(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[path]
}

// newTestOP starts a provider whose clients redirect to redirectURL.
func newTestOP(t *testing.T, redirectURL string) *testOP {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	o := &testOP{issuer: "http://" + srv.Listener.Addr().String(), srv: srv}
	clients := map[string]*storage.Client{
		clientWeb:    storage.WebClient(clientWeb, clientSecret, redirectURL),
		clientPublic: storage.NativeClient(clientPublic, redirectURL),
		clientOther:  storage.WebClient(clientOther, "other-secret", "http://127.0.0.1:1/cb"),
	}
	users := newUserStore()
	o.storage = &testStorage{
		Storage:      storage.NewStorageWithClients(users, clients),
		users:        users,
		assertClaims: map[string]bool{clientPublic: true, clientOther: true},
	}
	router := exampleop.SetupServer(o.issuer, o.storage, nil, false)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		tamper := o.tamper
		if o.hits == nil {
			o.hits = map[string]int{}
		}
		o.hits[r.URL.Path]++
		o.mu.Unlock()
		if tamper == nil || !strings.HasSuffix(r.URL.Path, "/oauth/token") {
			router.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		var resp map[string]any
		if rec.Code == http.StatusOK && json.Unmarshal(body, &resp) == nil {
			if raw, ok := resp["id_token"].(string); ok {
				resp["id_token"] = tamper(raw)
				body, _ = json.Marshal(resp)
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return o
}

// setTamper makes the provider rewrite ID tokens with f (nil: stop).
func (o *testOP) setTamper(f func(string) string) {
	o.mu.Lock()
	o.tamper = f
	o.mu.Unlock()
}

// mint issues an ID token as this provider would for client, subject and
// nonce, with the user's claims (no access token, so userinfo claims are
// included).
func (o *testOP) mint(t *testing.T, client, subject, nonce string) string {
	t.Helper()
	ctx := context.Background()
	c, err := o.storage.GetClientByClientID(ctx, client)
	if err != nil {
		t.Fatalf("mint: client %s: %v", client, err)
	}
	req := &authRequest{
		AuthRequest: &storage.AuthRequest{ApplicationID: client, UserID: subject, Nonce: nonce,
			Scopes: []string{oidc.ScopeOpenID, oidc.ScopeEmail, oidc.ScopeProfile}},
		s:    o.storage,
		user: o.storage.users.byID[subject],
	}
	tok, err := op.CreateIDToken(ctx, o.issuer, req, time.Hour, "", "", o.storage, c)
	if err != nil {
		t.Fatalf("mint ID token: %v", err)
	}
	return tok
}

// unverifiedClaims decodes a JWT's payload without checking anything; the
// tests use it only to build tampered tokens.
func unverifiedClaims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode JWT payload: %v", err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatalf("decode JWT claims: %v", err)
	}
	return claims
}

// withPayload returns jwt with its payload replaced by claims, keeping the
// original header and signature.
func withPayload(t *testing.T, jwt string, claims map[string]any) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// flipSignature changes one byte of jwt's signature.
func flipSignature(jwt string) string {
	i := strings.LastIndexByte(jwt, '.')
	sig, err := base64.RawURLEncoding.DecodeString(jwt[i+1:])
	if err != nil || len(sig) == 0 {
		return jwt + "x"
	}
	sig = bytes.Clone(sig)
	sig[len(sig)/2] ^= 0x01
	return jwt[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}
