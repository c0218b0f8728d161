// Package coordinator assembles Warren's control server: the store, the
// coordinator key, the netmap engine, the registry, the control channel
// and the admin API, and serves them until its context ends.
//
// It owns every goroutine it starts and ends them all in Serve's return or
// Close. It must never write the coordinator's private key anywhere but its
// own 0600 key file, and never expose the admin API without
// authentication: the unix socket is 0600 and checks peer credentials, the
// network listener requires TLS (or loopback) and an API key.
package coordinator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator/access"
	"github.com/warrenmesh/warren/coordinator/alert"
	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/console"
	"github.com/warrenmesh/warren/coordinator/control"
	"github.com/warrenmesh/warren/coordinator/export"
	"github.com/warrenmesh/warren/coordinator/flowlog"
	"github.com/warrenmesh/warren/coordinator/keyfile"
	"github.com/warrenmesh/warren/coordinator/keyring"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/policyfile"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/replica"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/derp"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/recording"
	"github.com/warrenmesh/warren/internal/wire"
)

// Config configures a coordinator.
type Config struct {
	// StateDir holds warren.db, coordinator.key, secrets.key and
	// admin.sock. Required.
	StateDir string
	// Store is the database's URL (see store.OpenURL): postgres://… for
	// PostgreSQL, sqlite:///path or a path for SQLite. Empty: SQLite at
	// <StateDir>/warren.db. A postgres:// URL makes the coordinator a
	// replica (Replica) that others may share the database with.
	Store string
	// Domain is the mesh DNS domain; default "warren.internal".
	Domain string
	// DNS is the extra records and split-DNS routes sent to the nodes in
	// their netmaps (ParseDNSRecord, ParseDNSRoute); nil: none.
	DNS *wire.DNSConfig
	// Login enables interactive login (OIDC and/or local users); its
	// browser pages are served under /login/ by Handler.
	Login LoginConfig
	// RequireApproval makes new user nodes wait for an admin's approval.
	RequireApproval bool
	Logger          *slog.Logger
	// KeyExpiry and EphemeralGrace: see registry.Config.
	KeyExpiry      time.Duration
	EphemeralGrace time.Duration
	// PostureMaxAge is how long a node's posture report counts (see
	// registry.Config); 0 means registry.DefaultPostureMaxAge.
	PostureMaxAge time.Duration
	// KeepAlive and HandshakeTimeout: see control.Config.
	KeepAlive        time.Duration
	HandshakeTimeout time.Duration
	// Limits bound the connections clients hold on ServeHTTP's and
	// ServeAdmin's listeners; zero values are defaults.
	Limits ServeLimits
	// AuditRetention is how long audit events are kept; older ones are
	// pruned every hour. 0 keeps them forever.
	AuditRetention time.Duration
	// LogSinks receive the audit trail (package export), each from its
	// cursor in the store, at least once; nil: none.
	LogSinks []export.SinkConfig
	// Alerts, if set, turns audited events (admin actions, new devices)
	// and deny bursts into alert events (package alert), which reach the
	// log sinks; nil: no alerts.
	Alerts *alert.Config
	// AlertWebhook, if set, is a Slack-compatible incoming webhook that
	// gets the alert events (an export sink limited to them).
	AlertWebhook string
	// AccessWebhook, if set, announces new just-in-time access requests
	// (and break-glass grants) with the commands to approve or deny them:
	// a Slack-compatible text field plus the events, signed with the
	// HMAC secret in AccessWebhookSecretFile if set (see accessWebhook).
	AccessWebhook           string
	AccessWebhookSecretFile string
	// FlowRetention is how long flow records are kept (by their last
	// packet); older ones are pruned every hour, in bounded batches. 0
	// keeps them forever.
	FlowRetention time.Duration
	// PolicyPath is the admins' policy file, watched for changes; default
	// <StateDir>/policy.hujson (created with policyfile.DefaultSource when
	// missing).
	PolicyPath string
	// Relay configures the embedded DERP relay and STUN server and the
	// DERP map nodes get.
	Relay RelayConfig
	// SharedStorePool opens the store with one pool of connections for
	// reads and writes, as it was before it had one writer
	// (store.Options.SharedPool): for benchmarks comparing the two in one
	// run, never for serving.
	SharedStorePool bool
	// ConsoleInsecureCookies drops the Secure attribute from the web
	// console's session cookie: for tests whose HTTP client keeps Secure
	// cookies to HTTPS (Go's cookie jar), never for serving.
	ConsoleInsecureCookies bool
	// ConsoleIdleTimeout and ConsoleMaxAge end a console session unused
	// this long, and any this long after sign-in (defaults 30 min and
	// 12 h); ConsoleNow is the console's clock (nil: time.Now; tests).
	ConsoleIdleTimeout, ConsoleMaxAge time.Duration
	ConsoleNow                        func() time.Time
	// Replica makes this coordinator one of several sharing one store
	// (see replica.go): it follows the store's change feed, records
	// which nodes it holds, keeps the store's newest policy version in
	// force, and runs the jobs that must run once only while it holds
	// the store's jobs lease. ReplicaID names it in the store (default:
	// host name and a random suffix, new at every start); Replication
	// tunes the follower (zero values are defaults; tests shorten them).
	Replica     bool
	ReplicaID   string
	Replication ReplicationConfig
}

// Coordinator is a running control server.
type Coordinator struct {
	cfg      Config
	log      *slog.Logger
	key      key.ControlPrivate
	store    store.Store
	engine   *netmap.Engine
	registry *registry.Registry
	access   *access.Service
	// recordings holds the SSH sessions the coordinator records
	// (sshrecord.go).
	recordings *recording.Dir
	control    *control.Server
	api        *api.Server
	audit      *audit.Log
	failures   *audit.Failures // unauthenticated failures: counted, never stored
	policy     *policyfile.Manager
	relay      *derp.Server   // embedded relay, nil when disabled
	revoked    *revocations   // node keys that lost relay admission, for the relays
	stun       net.PacketConn // embedded STUN server's socket, nil when none
	derpMap    *wire.DERPMap
	logins     logins // interactive login, zero when not configured
	console    *console.Server
	metrics    *coordMetrics
	follower   *replica.Follower // nil unless Config.Replica
	leader     *replica.Leader   // nil unless Config.Replica

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New opens (or creates) the coordinator's state and returns it ready to
// serve. Close releases it. When New fails it leaves nothing open or
// running: everything it opened is closed again on one cleanup path.
func New(ctx context.Context, cfg Config) (_ *Coordinator, err error) {
	if cfg.StateDir == "" {
		return nil, errors.New("coordinator: state directory required")
	}
	if cfg.Domain == "" {
		cfg.Domain = "warren.internal"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PolicyPath == "" {
		cfg.PolicyPath = filepath.Join(cfg.StateDir, "policy.hujson")
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if err := validateDNS(cfg.DNS, cfg.Domain); err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("coordinator: create state dir: %w", err)
	}
	k, err := loadOrCreateKey(filepath.Join(cfg.StateDir, "coordinator.key"))
	if err != nil {
		return nil, err
	}
	// The key ring sealing refresh tokens and TOTP secrets in the
	// database lives beside the coordinator key, never in the database.
	ring, err := keyring.LoadOrCreate(filepath.Join(cfg.StateDir, SecretsKeyFile))
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}

	// From here on every part New opens or starts is added to undo as
	// soon as it exists, and undo runs (in reverse) on any failure.
	var undo closers
	defer func() {
		if err != nil {
			undo.run()
			err = fmt.Errorf("coordinator: %w", err)
		}
	}()
	met := newCoordMetrics()
	if store.IsPostgresURL(cfg.Store) {
		cfg.Replica = true
	}
	if cfg.Replica && cfg.ReplicaID == "" {
		cfg.ReplicaID = newReplicaID()
	}
	dbURL := cmp.Or(cfg.Store, filepath.Join(cfg.StateDir, "warren.db"))
	st, err := store.OpenURL(ctx, dbURL, store.Options{Logger: cfg.Logger, Secrets: ring,
		SharedPool: cfg.SharedStorePool, Observe: met.observeStore, ReplicaID: cfg.ReplicaID})
	if errors.Is(err, keyring.ErrUnknownKey) {
		return nil, fmt.Errorf("%w (restore %s from the backup of this state directory)", err, SecretsKeyFile)
	}
	if err != nil {
		return nil, err
	}
	undo.add(func() { st.Close() })
	c := &Coordinator{cfg: cfg, log: cfg.Logger, key: k, store: st, failures: audit.NewFailures(cfg.Logger, 0), metrics: met}
	err = c.listenSTUN()
	if c.stun != nil {
		undo.add(func() { c.stun.Close() })
	}
	if err != nil {
		return nil, err
	}
	if c.derpMap, err = c.cfg.Relay.derpMap(); err != nil {
		return nil, err
	}
	c.audit = audit.New(st, cfg.Logger)
	c.audit.OnEvent(met.onAudit)
	c.revoked = newRevocations()
	undo.add(c.revoked.close)
	c.engine = netmap.New(netmap.Config{Domain: cfg.Domain, DNS: cfg.DNS, DERPMap: c.derpMap, Logger: cfg.Logger,
		OnRevoke: c.revoked.revoke, OnPush: met.onPush})
	c.policy, err = policyfile.New(policyfile.Config{Path: cfg.PolicyPath, Store: st, Audit: c.audit,
		Apply: c.applyPolicy, Logger: cfg.Logger, Replica: cfg.Replica})
	if err != nil {
		return nil, err
	}
	// The feed's cursor is taken before anything is loaded, so that no
	// change committed meanwhile is missed.
	if err := c.newFollower(ctx); err != nil {
		return nil, err
	}
	// The policy goes in before the nodes, so each node is compiled once.
	if err := c.policy.Load(ctx); err != nil {
		return nil, err
	}
	if c.logins, err = c.buildLogin(ctx, cfg.Login, st, registryUsers{c}); err != nil {
		return nil, err
	}
	undo.add(c.logins.close)
	c.registry, err = registry.New(ctx, registry.Config{
		Store: st, Engine: c.engine, Audit: c.audit, Failures: c.failures, Login: c.logins.login, Logger: cfg.Logger,
		KeyExpiry: cfg.KeyExpiry, EphemeralGrace: cfg.EphemeralGrace, RequireApproval: cfg.RequireApproval,
		Policy: c.policy.Current, PostureMaxAge: cfg.PostureMaxAge, PresenceTTL: cfg.Replication.DeadAfter,
	})
	if err != nil {
		return nil, err
	}
	undo.add(c.registry.Close) // its ephemeral-node timers
	// The stored grants go back in force before any node connects.
	c.access, err = access.New(access.Config{Store: st, Audit: c.audit, Engine: c.engine, Policy: c.policy.Current, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	if err := c.access.Start(ctx); err != nil {
		return nil, err
	}
	if c.follower != nil {
		if err := c.follower.Start(ctx); err != nil {
			return nil, err
		}
	}
	c.control, err = control.New(control.Config{Key: k, Registry: c.registry, Engine: c.engine,
		Audit: c.audit, Failures: c.failures, Logger: cfg.Logger, KeepAlive: cfg.KeepAlive, HandshakeTimeout: cfg.HandshakeTimeout,
		Flows: flowlog.New(c.engine, c.audit, cfg.Logger), Access: c.access, PublicURL: cfg.Login.PublicURL})
	if err != nil {
		return nil, err
	}
	undo.add(c.control.Close)
	if c.recordings, err = recordingsDir(cfg.StateDir); err != nil {
		return nil, err
	}
	c.recordings.Logger = cfg.Logger
	c.api, err = api.New(api.Config{Registry: c.registry, Store: st, Audit: c.audit, Failures: c.failures,
		Policy: c.policy, Engine: c.engine, Access: c.access, Recordings: c.recordings, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	c.console, err = console.New(console.Config{Registry: c.registry, Store: st, Audit: c.audit, Policy: c.policy,
		Engine: c.engine, Access: c.access, Login: c.logins.login, Logger: cfg.Logger, Failures: c.failures,
		InsecureCookies: cfg.ConsoleInsecureCookies, IdleTimeout: cfg.ConsoleIdleTimeout, MaxAge: cfg.ConsoleMaxAge,
		Now: cfg.ConsoleNow, DERPMap: c.derpMap, RelayClients: c.relayClients})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	undo.add(func() { cancel(); c.wg.Wait() })
	if err := c.startRelay(runCtx); err != nil {
		return nil, err
	}
	if c.relay != nil {
		undo.add(func() { c.relay.Close() })
	}
	sinks := cfg.LogSinks
	if cfg.AlertWebhook != "" {
		hook, err := alertWebhook(cfg.AlertWebhook)
		if err != nil {
			return nil, err
		}
		sinks = append(slices.Clip(sinks), hook)
	}
	if cfg.AccessWebhook != "" {
		hook, err := accessWebhook(cfg.AccessWebhook, cfg.AccessWebhookSecretFile)
		if err != nil {
			return nil, err
		}
		sinks = append(slices.Clip(sinks), hook)
	}
	exporter, err := export.New(export.Config{Sinks: sinks, Sources: []export.Source{export.AuditSource{Store: st}, export.FlowSource{Store: st}},
		Cursors: st, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	// Nothing fails from here on.
	met.register(c)
	met.registerSinks(exporter)
	var once jobs // what must run on one replica only, see replica.go
	if len(sinks) > 0 {
		once.add(exporter.Run)
	}
	if cfg.Alerts != nil {
		ac := *cfg.Alerts
		if ac.Logger == nil {
			ac.Logger = cfg.Logger
		}
		if ac.Denies == nil {
			ac.Denies = st // deny bursts from the stored flow logs
		}
		if ac.Flows == nil {
			ac.Flows = st // unusual hours and time-window tries from the stored flow logs
		}
		if ac.Windows == nil {
			ac.Windows = c.engine.RuleWindow // the time-window alert's text
		}
		if ac.Postures == nil {
			ac.Postures = func() map[string]int {
				out := map[string]int{}
				for id, n := range c.engine.PostureDenials() {
					out[fmt.Sprintf("node:%d", id)] = n
				}
				return out
			}
		}
		alerter := alert.New(ac, st, c.audit)
		once.add(alerter.Run)
	}
	if cfg.AuditRetention > 0 || cfg.FlowRetention > 0 {
		once.add(func(ctx context.Context) {
			c.prune(ctx, cfg.AuditRetention, cfg.FlowRetention) // at start, then hourly
			c.runRetention(ctx, cfg.AuditRetention, cfg.FlowRetention)
		})
	}
	once.add(func(ctx context.Context) { _ = c.access.Run(ctx) })
	if c.logins.oidc != nil && c.logins.recheck > 0 {
		once.add(func(ctx context.Context) { c.runRechecks(ctx, c.logins.oidc, c.logins.recheck) })
	}
	c.startJobs(runCtx, once)
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		_ = c.engine.Run(runCtx)
	}()
	go func() {
		defer c.wg.Done()
		if err := c.policy.Run(runCtx); err != nil {
			c.log.Error("policy file no longer watched; edits need a reload", "err", err)
		}
	}()
	return c, nil
}

// closers is a constructor's cleanup path: what it has opened or started
// so far, to close in reverse order when a later step fails.
type closers []func()

func (cs *closers) add(f func()) { *cs = append(*cs, f) }

func (cs closers) run() {
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// PublicKey returns the key nodes pin.
func (c *Coordinator) PublicKey() key.ControlPublic { return c.key.Public() }

// Store returns the coordinator's store (for tests and embedding).
func (c *Coordinator) Store() store.Store { return c.store }

// Registry returns the coordinator's registry (for tests and embedding).
func (c *Coordinator) Registry() *registry.Registry { return c.registry }

// Console returns the web console (for tests that walk its pages).
func (c *Coordinator) Console() *console.Server { return c.console }

// Policy returns the policy manager (for tests and embedding).
func (c *Coordinator) Policy() *policyfile.Manager { return c.policy }

// Engine returns the netmap engine (for tests and embedding).
func (c *Coordinator) Engine() *netmap.Engine { return c.engine }

// Failures returns the counters of unauthenticated failures (bad API keys,
// failed handshakes, silent clients, refused connections).
func (c *Coordinator) Failures() *audit.Failures { return c.failures }

// Handler serves the public endpoints: the key, the control channel and a
// health check.
func (c *Coordinator) Handler() http.Handler {
	mux := http.NewServeMux()
	ctl := c.control.Handler()
	mux.Handle(control.KeyPath, ctl)
	mux.Handle(control.ControlPath, ctl)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc(sshRecordRoute, c.serveSSHRecord)
	if c.relay != nil {
		mux.Handle(RelayPath, c.relay)
		mux.Handle(RelayPath+"/", c.relay)
	}
	if c.logins.handler != nil {
		mux.Handle("/login/", c.logins.handler)
	}
	mux.Handle(console.Prefix, c.console.Handler())
	if c.cfg.Relay.AdmitToken != "" {
		mux.HandleFunc("GET "+RelayAdmitPath, c.serveRelayAdmit)
		mux.HandleFunc("GET "+RelayRevocationsPath, c.serveRelayRevocations)
	}
	return mux
}

// AdminHandler serves the admin API to callers with an API key. Mount it
// on a TLS (or loopback) listener.
func (c *Coordinator) AdminHandler() http.Handler { return c.api.RemoteHandler() }

// ListenAdminSocket creates the admin API's unix socket at path, readable
// and writable by the owner only.
func ListenAdminSocket(path string) (net.Listener, error) {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, nil
}

// ServeAdmin serves the admin API on a unix-socket listener (see
// ListenAdminSocket) until ctx ends. Only root or the coordinator's own user
// get in. The timeouts of Config.Limits apply.
func (c *Coordinator) ServeAdmin(ctx context.Context, ln net.Listener) error {
	srv := c.cfg.Limits.httpServer(c.api.LocalHandler())
	srv.ConnContext = api.LocalConnContext
	return serveUntil(ctx, srv, ln, func() error { return srv.Serve(ln) })
}

// serveUntil runs serve until ctx ends, then shuts srv down gracefully.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener, serve func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-errc
	_ = ln.Close()
	return nil
}

// ServeHTTP serves Handler on ln until ctx ends, within Config.Limits: idle
// keep-alive connections and slow requests time out, and connections over
// the per-source or total cap are closed at once. Control channels are
// closed first so the shutdown does not wait on long-lived websockets.
func (c *Coordinator) ServeHTTP(ctx context.Context, ln net.Listener, handler http.Handler) error {
	srv := c.cfg.Limits.httpServer(handler)
	ln = c.limitListener(ln)
	stop := context.AfterFunc(ctx, func() {
		c.control.Close()
		c.revoked.close() // relays' long polls
		if c.relay != nil {
			c.relay.Close() // relay websockets are long-lived too
		}
		c.console.Close() // the console's live-update streams
	})
	defer stop()
	return serveUntil(ctx, srv, ln, func() error { return srv.Serve(ln) })
}

// Close ends every control channel and background loop and closes the
// store.
func (c *Coordinator) Close() error {
	c.control.Close()
	c.console.Close()
	c.revoked.close()
	if c.relay != nil {
		c.relay.Close()
	}
	c.registry.Close()
	c.logins.close()
	c.cancel()
	if c.stun != nil {
		c.stun.Close()
	}
	c.wg.Wait()
	return c.store.Close()
}

// SecretsKeyFile is the key ring (see package keyring) in the state
// directory that seals the secrets the database keeps.
const SecretsKeyFile = "secrets.key"

// loadOrCreateKey reads the coordinator's private key, creating it (0600)
// on first start. It refuses a key file other users can access.
func loadOrCreateKey(path string) (key.ControlPrivate, error) {
	var k key.ControlPrivate
	b, err := keyfile.Read(path)
	if errors.Is(err, os.ErrNotExist) {
		k = key.NewControl()
		text, _ := k.MarshalText()
		if err := keyfile.Create(path, append(text, '\n')); err != nil {
			return k, fmt.Errorf("coordinator: write key: %w", err)
		}
		return k, nil
	}
	if err != nil {
		return k, fmt.Errorf("coordinator: read key: %w", err)
	}
	if err := k.UnmarshalText([]byte(strings.TrimSpace(string(b)))); err != nil {
		return k, fmt.Errorf("coordinator: key file %s: %w", path, err)
	}
	return k, nil
}

// applyPolicy puts p in force: the engine compiles it, and its
// autoApprovers approve the advertised routes they now cover. At the
// first load the registry does not exist yet (the nodes it loads are
// compiled against p then), so only the engine sees p; the grants in
// force are re-checked against p (see accessPolicyChanged).
func (c *Coordinator) applyPolicy(p *policy.Policy) {
	c.engine.SetPolicy(p)
	if c.registry != nil {
		c.registry.AutoApprove(context.Background(), p)
	}
	c.accessPolicyChanged(p)
}

// alertWebhook is the export sink of --alert-webhook: the URL's own
// options kept, Slack's message format unless another is given, the
// alert events only.
func alertWebhook(raw string) (export.SinkConfig, error) {
	hook, err := export.ParseURL(raw)
	if err != nil {
		return hook, fmt.Errorf("alert webhook: %w", err)
	}
	if hook.Kind != export.KindWebhook {
		return hook, fmt.Errorf("alert webhook %q: want an http:// or https:// URL", hook.Name)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return hook, fmt.Errorf("alert webhook: %w", err)
	}
	if q := u.Query(); !q.Has("format") {
		hook.Format = export.FormatSlack
	}
	if q := u.Query(); !q.Has("name") {
		hook.Name = "alert-webhook"
	}
	hook.Actions = []string{alert.ActionPrefix}
	return hook, nil
}
