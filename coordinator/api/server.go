package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/access"
	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/auth"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/policyfile"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/peercred"
	"github.com/warrenmesh/warren/internal/recording"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// Config configures a Server.
type Config struct {
	Registry *registry.Registry  // required
	Store    store.Store         // required: API keys, audit listing
	Audit    *audit.Log          // required
	Policy   *policyfile.Manager // required: policy endpoints
	Engine   *netmap.Engine      // required: explain resolves node names
	// Access is the just-in-time access service (nil: its endpoints
	// answer 501).
	Access *access.Service
	// Recordings holds the SSH sessions the coordinator recorded (nil:
	// none are kept here).
	Recordings *recording.Dir
	// Failures counts callers who fail to authenticate over the network
	// (nil: a counter logging to Logger).
	Failures *audit.Failures
	Logger   *slog.Logger
	Now      func() time.Time
}

// lastUsedEvery is how often an API key's LastUsed is written at most:
// every request writing it would turn reads into writes.
const lastUsedEvery = time.Minute

// Server is the admin API.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
	// intMux holds the only endpoints integration API keys may call.
	intMux *http.ServeMux
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Registry == nil || cfg.Store == nil || cfg.Audit == nil || cfg.Policy == nil || cfg.Engine == nil {
		return nil, errors.New("api: Registry, Store, Audit, Policy and Engine are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Failures == nil {
		cfg.Failures = audit.NewFailures(cfg.Logger, 0)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), intMux: http.NewServeMux()}
	s.routes()
	s.sshRoutes(s.mux)
	s.intMux.HandleFunc("GET /api/v1/whoami", s.whoami)
	s.attrRoutes(s.intMux)
	s.mux.HandleFunc("GET "+FailuresPath, s.listFailures)
	return s, nil
}

// FailuresPath serves the counts of unauthenticated failures (admins
// only): FailuresResponse.
const FailuresPath = "/api/v1/failures"

// FailuresResponse counts, per kind ("api.auth", "control.handshake",
// "control.silent", "conn.refused"), the failures of callers nobody knew
// since the coordinator started.
type FailuresResponse struct {
	Failures map[string]uint64 `json:"failures"`
}

func (s *Server) listFailures(w http.ResponseWriter, r *http.Request) {
	if !actorFrom(r.Context()).Admin {
		writeErr(w, registry.ErrForbidden)
		return
	}
	writeJSON(w, http.StatusOK, FailuresResponse{Failures: s.cfg.Failures.Counts()})
}

type actorKey struct{}

func actorFrom(ctx context.Context) registry.Actor {
	a, _ := ctx.Value(actorKey{}).(registry.Actor)
	return a
}

// LocalHandler serves requests arriving on the unix socket; the server
// built with LocalConnContext must run it. Only root or the coordinator's
// own user get in, as admins.
func (s *Server) LocalHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, ok := peercred.FromContext(r.Context())
		self, err := peercred.Self()
		if !ok || err != nil || !(peercred.Policy{Admins: peercred.OSAdmins(), Owner: self}).Allows(cred) {
			uid := "unknown"
			if ok && cred.User != "" {
				uid = cred.User
			}
			s.denyLocal(w, r, "local:uid="+uid, "only root or the coordinator's user may use the admin socket")
			return
		}
		a := registry.Actor{Name: "local:uid=" + cred.User, Admin: true, Remote: "unix"}
		s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, a)))
	})
}

// LocalConnContext records the peer credentials of a unix-socket
// connection for LocalHandler. Use it as http.Server.ConnContext.
func LocalConnContext(ctx context.Context, c net.Conn) context.Context {
	return peercred.ConnContext(ctx, c)
}

// RemoteHandler serves requests over the network: each must carry
// "Authorization: Bearer wak_…" with a valid API key of an enabled user.
func (s *Server) RemoteHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := s.authenticate(r)
		if err != nil {
			s.deny(w, r, err.Error())
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), actorKey{}, a))
		if a.Integration != "" {
			s.integrationOnly(w, r)
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

func (s *Server) authenticate(r *http.Request) (registry.Actor, error) {
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return registry.Actor{}, errors.New("missing API key: send Authorization: Bearer wak_…")
	}
	if err := auth.CheckFormat(secret, auth.APIKeyPrefix); err != nil {
		return registry.Actor{}, errors.New("malformed API key")
	}
	ctx := r.Context()
	k, err := s.cfg.Store.GetAPIKeyByHash(ctx, auth.Hash(secret))
	if err != nil {
		return registry.Actor{}, errors.New("unknown API key")
	}
	if err := auth.CheckAPIKey(k, s.cfg.Now()); err != nil {
		return registry.Actor{}, fmt.Errorf("API key %s: %w", k.Prefix, err)
	}
	u, err := s.cfg.Store.GetUser(ctx, k.UserID)
	if err != nil || u.Disabled {
		return registry.Actor{}, fmt.Errorf("API key %s: owner missing or disabled", k.Prefix)
	}
	if k.Role == store.APIKeyIntegration && u.Role != store.RoleAdmin {
		return registry.Actor{}, fmt.Errorf("API key %s: its owner is no longer an admin", k.Prefix)
	}
	if k.Role != store.APIKeyOwner && k.Role != store.APIKeyIntegration {
		return registry.Actor{}, fmt.Errorf("API key %s: unknown role", k.Prefix)
	}
	if now := s.cfg.Now(); now.Sub(k.LastUsed) >= lastUsedEvery || now.Before(k.LastUsed) {
		if err := s.cfg.Registry.NoteAPIKeyUse(ctx, k.ID, now); err != nil {
			s.log.Warn("api: record key use", "key", k.Prefix, "err", err)
		}
	}
	if k.Role == store.APIKeyIntegration {
		// Neither admin nor the owner's user: it may set attributes only.
		return registry.Actor{Name: "integration:" + k.Name, Integration: k.Name, Remote: r.RemoteAddr}, nil
	}
	return registry.Actor{Name: "user:" + u.Name, UserID: u.ID, Admin: u.Role == store.RoleAdmin, Remote: r.RemoteAddr}, nil
}

// deny refuses a network caller who did not authenticate. Anyone can send
// these as fast as they like, so they are counted (and sampled into the
// log, truncated), never written to the audit log.
func (s *Server) deny(w http.ResponseWriter, r *http.Request, why string) {
	s.cfg.Failures.Record("api.auth", r.RemoteAddr, r.Method+" "+audit.Truncate(r.URL.Path, audit.MaxDetail)+": "+why)
	writeJSON(w, http.StatusUnauthorized, ErrorResponse{Error: why})
}

// denyLocal refuses a unix-socket caller the kernel named: who it is is
// known, so the refusal is audited (the path truncated).
func (s *Server) denyLocal(w http.ResponseWriter, r *http.Request, actor, why string) {
	_ = s.cfg.Audit.Record(r.Context(), audit.Event{Actor: actor, Action: "api.auth",
		Target: audit.Truncate(r.Method+" "+r.URL.Path, audit.MaxDetail),
		Remote: r.RemoteAddr, Outcome: audit.Denied, Detail: map[string]any{"error": why}})
	writeJSON(w, http.StatusUnauthorized, ErrorResponse{Error: why})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeErr maps registry and store errors to HTTP statuses.
func writeErr(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, registry.ErrForbidden), errors.Is(err, registry.ErrTagNotOwned):
		status = http.StatusForbidden
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, store.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, registry.ErrBadRequest), errors.Is(err, errBadBody):
		status = http.StatusBadRequest
	}
	writeJSON(w, status, ErrorResponse{Error: err.Error()})
}

var errBadBody = errors.New("bad request body")

// readJSON decodes a bounded body, rejecting unknown fields so a typo is an
// error rather than a silent default.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errBadBody, err)
	}
	return nil
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: id must be a positive number", errBadBody)
	}
	return id, nil
}
