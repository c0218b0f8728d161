package localapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/warrenmesh/warren/internal/peercred"
)

// maxBody bounds request bodies; every request is small.
const maxBody = 64 << 10

// Config configures a Server.
type Config struct {
	Backend Backend // required
	Logger  *slog.Logger
	// Access names who may use the API besides the OS's administrators
	// (root; SYSTEM and Administrators on Windows) and the daemon's own
	// user. Listen must be given the same, so the socket's mode or the
	// pipe's ACL lets them connect at all.
	Access Access
}

// Access names who may use the local API besides the OS's administrators
// and the daemon's own user.
type Access struct {
	// Group is a group whose members may: a gid in decimal on unix (the
	// socket is then 0660 with that group), a SID on Windows; "" for none.
	Group string
	// Users are further users who may, by SID (Windows only: a unix
	// socket's mode can name only one group).
	Users []string
}

// Server serves the local API.
type Server struct {
	cfg    Config
	log    *slog.Logger
	mux    *http.ServeMux
	policy peercred.Policy
}

// NewServer returns a Server.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("localapi: Backend is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	self, err := peercred.Self()
	if err != nil {
		return nil, fmt.Errorf("localapi: who am I: %w", err)
	}
	policy := peercred.Policy{Admins: peercred.OSAdmins(), Owner: self, Users: cfg.Access.Users, Group: cfg.Access.Group}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), policy: policy}
	s.mux.HandleFunc("GET /v0/status", s.status)
	s.mux.HandleFunc("POST /v0/up", s.up)
	s.mux.HandleFunc("POST /v0/down", s.down)
	s.mux.HandleFunc("POST /v0/logout", s.logout)
	s.mux.HandleFunc("POST /v0/ping", s.ping)
	s.mux.HandleFunc("GET /v0/netcheck", s.netcheck)
	s.mux.HandleFunc("GET /v0/resolve", s.resolve)
	s.mux.HandleFunc("POST /v0/dial", s.dial)
	s.mux.HandleFunc("GET /v0/posture", s.posture)
	s.mux.HandleFunc("POST /v0/access", s.access)
	s.mux.HandleFunc("GET /v0/whois", s.whois)
	return s, nil
}

// Serve serves the API on ln until ctx ends or ln fails. It returns once
// every request it started has ended, dial streams included.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Requests run under hctx, which ends after the graceful drain; dial
	// streams, which Shutdown cannot see once hijacked, end with it too.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	hctx = context.WithValue(hctx, streamsKey{}, hctx)
	var reqs requests
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !reqs.start() {
				writeError(w, http.StatusServiceUnavailable, errors.New("warrend is shutting down"))
				return
			}
			defer reqs.done()
			s.ServeHTTP(w, r)
		}),
		BaseContext:       func(net.Listener) context.Context { return hctx },
		ConnContext:       peercred.ConnContext,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served, done := make(chan struct{}), make(chan struct{})
	go func() { // joined below
		defer close(done)
		select {
		case <-ctx.Done():
		case <-served:
		}
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		hcancel()
		_ = srv.Close()
	}()
	err := srv.Serve(ln)
	close(served)
	<-done
	reqs.wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// streamsKey is the context key of the context that ends dial streams.
type streamsKey struct{}

// requests counts running handlers so Serve can wait for them; after
// wait it refuses new ones.
type requests struct {
	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup
}

func (q *requests) start() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.running.Add(1)
	return true
}

func (q *requests) done() { q.running.Done() }

func (q *requests) wait() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.running.Wait()
}

// ServeHTTP checks the caller's credentials and serves the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cred, ok := peercred.FromContext(r.Context())
	if !ok || !s.policy.Allows(cred) {
		who := "unknown"
		if ok {
			who = cred.String()
		}
		s.log.Warn("local API call refused", "caller", who, "path", r.URL.Path)
		writeError(w, http.StatusForbidden, errors.New("permission denied: only "+adminName+", the warrend user or its group may use the local API"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	s.mux.ServeHTTP(w, r)
}

// apiError is the body of every failed request.
type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, apiError{Error: err.Error()})
}

// readJSON decodes the request body, which must be empty or one JSON
// value with only known fields, into v. It answers a bad body itself.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("unexpected data after the JSON value")
			if terr != nil && !isSyntaxError(terr) {
				err = terr
			}
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case err == nil, errors.Is(err, io.EOF): // an empty body is the zero request
		return true
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", tooBig.Limit))
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
	}
	return false
}

func isSyntaxError(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Backend.Status(r.Context()))
}

// upEvent is one line of the up response stream: progress, then a final
// status or error.
type upEvent struct {
	Progress string  `json:"progress,omitempty"`
	Status   *Status `json:"status,omitempty"`
	Error    string  `json:"error,omitempty"`
}

// ndjson starts a streamed answer of JSON lines and returns the function
// that writes (and flushes) one event of it.
func ndjson[E any](w http.ResponseWriter) func(E) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	return func(ev E) {
		_ = enc.Encode(ev)
		if flusher != nil {
			flusher.Flush()
		}
	}
}

func (s *Server) up(w http.ResponseWriter, r *http.Request) {
	var req UpRequest
	if !readJSON(w, r, &req) {
		return
	}
	emit := ndjson[upEvent](w)
	st, err := s.cfg.Backend.Up(r.Context(), req, func(msg string) { emit(upEvent{Progress: msg}) })
	if err != nil {
		emit(upEvent{Error: err.Error()})
		return
	}
	emit(upEvent{Status: &st})
}

func (s *Server) down(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Backend.Down(r.Context()); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, s.cfg.Backend.Status(r.Context()))
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Backend.Logout(r.Context()); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, s.cfg.Backend.Status(r.Context()))
}

func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	var req PingRequest
	if !readJSON(w, r, &req) {
		return
	}
	rep, err := s.cfg.Backend.Ping(r.Context(), req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) netcheck(w http.ResponseWriter, r *http.Request) {
	rep, err := s.cfg.Backend.Netcheck(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) posture(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Backend.Posture(r.Context()))
}

// ResolveResponse answers /v0/resolve.
type ResolveResponse struct {
	Name    string     `json:"name"`
	Address netip.Addr `json:"address"`
}

func (s *Server) resolve(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	a, err := s.cfg.Backend.Resolve(r.Context(), name)
	if err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	writeJSON(w, http.StatusOK, ResolveResponse{Name: name, Address: a})
}

// dialUpgrade is the Upgrade token of a /v0/dial request: after the 101
// response the connection carries the raw stream.
const dialUpgrade = "warren-dial"

func (s *Server) dial(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != dialUpgrade {
		writeError(w, http.StatusBadRequest, errors.New("dial needs Upgrade: "+dialUpgrade))
		return
	}
	network, addr := r.URL.Query().Get("network"), r.URL.Query().Get("addr")
	if network == "" {
		network = "tcp"
	}
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		writeError(w, http.StatusBadRequest, fmt.Errorf("dial: network %q: only tcp is supported", network))
		return
	}
	upstream, err := s.cfg.Backend.Dial(r.Context(), network, addr)
	if err != nil {
		writeError(w, http.StatusBadGateway, err)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		writeError(w, http.StatusInternalServerError, errors.New("dial: connection cannot be taken over"))
		return
	}
	w.Header().Set("Connection", "Upgrade")
	w.Header().Set("Upgrade", dialUpgrade)
	w.WriteHeader(http.StatusSwitchingProtocols)
	client, brw, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	_ = client.SetDeadline(time.Time{})
	// End the stream when Serve stops. Not with r.Context(): that ends
	// when the client half-closes.
	if ctx, ok := r.Context().Value(streamsKey{}).(context.Context); ok {
		stop := context.AfterFunc(ctx, func() {
			client.Close()
			upstream.Close()
		})
		defer stop()
	}
	splice(client, brw.Reader, upstream)
}

// splice copies both ways until both directions are done, then closes
// both connections.
func splice(client net.Conn, clientR *bufio.Reader, upstream net.Conn) {
	done := make(chan struct{})
	go func() { // joined below
		defer close(done)
		_, _ = io.Copy(upstream, clientR)
		closeWrite(upstream)
	}()
	_, _ = io.Copy(client, upstream)
	closeWrite(client)
	<-done
	client.Close()
	upstream.Close()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}
