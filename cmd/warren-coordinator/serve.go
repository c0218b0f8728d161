package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/alert"
	"github.com/warrenmesh/warren/coordinator/export"
	"github.com/warrenmesh/warren/coordinator/login/oidc"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/connlimit"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

const defaultStateDir = "/var/lib/warren-coordinator"

// storeUsage is the help of --store.
const storeUsage = "the database: postgres://user@host/db?sslmode=verify-full (PostgreSQL; replicas share one), or sqlite:///path/warren.db (default $WARREN_STORE, else SQLite at <state-dir>/warren.db)"

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", stateDirDefault(), "directory for the database, key and admin socket (default $WARREN_STATE_DIR, else "+defaultStateDir+")")
	storeURL := fs.String("store", os.Getenv("WARREN_STORE"), storeUsage)
	listen := fs.String("listen", ":8080", "address for nodes (control channel, /key)")
	publicURL := fs.String("public-url", "", "URL nodes use to reach this coordinator (default: derived from --listen)")
	adminListen := fs.String("admin-listen", "", "address for the remote admin API (needs --tls-cert/--tls-key unless loopback)")
	metricsListen := fs.String("metrics-listen", "", "serve Prometheus metrics at /metrics on this address of their own, e.g. 127.0.0.1:9101 (no authentication: keep it on loopback or a private network; empty: off)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate for --admin-listen")
	tlsKey := fs.String("tls-key", "", "TLS key for --admin-listen")
	domain := fs.String("domain", "warren.internal", "mesh DNS domain")
	var dnsRecords, dnsRoutes cli.StringList
	fs.Var(&dnsRecords, "dns-record", "extra MagicDNS record name=ip[,ip] (repeatable; a bare name is under --domain), answered by nodes in kernel TUN mode")
	fs.Var(&dnsRoutes, "dns-route", "split-DNS route domain=ip[,ip] (repeatable): nodes in kernel TUN mode send the names under domain to these resolvers, which must be mesh addresses (ip or ip:port)")
	policyPath := fs.String("policy", "", "policy file, watched for changes (default <state-dir>/policy.hujson; created with a deny-by-default policy if missing)")
	keyExpiry := fs.Duration("key-expiry", registry.DefaultKeyExpiry, "node key lifetime for user nodes (tagged nodes never expire)")
	grace := fs.Duration("ephemeral-grace", registry.DefaultEphemeralGrace, "how long an ephemeral node may be offline before it is deleted")
	postureMaxAge := fs.Duration("posture-max-age", registry.DefaultPostureMaxAge, "a node's posture attributes count as absent this long after its last report or heartbeat")
	bootstrap := fs.String("bootstrap-user", "", "create this admin user (if missing) and, if it has no usable one, a reusable 24h pre-auth key, and print how to join")
	requireApproval := fs.Bool("require-approval", false, "new user devices wait until an admin approves them (warren-coordinator nodes approve ID)")
	noRelay := fs.Bool("no-relay", false, "do not embed a DERP relay (nodes then need --derp-map regions)")
	stunListen := fs.String("stun-listen", ":3478", "UDP address of the embedded STUN server; without a host, on the host of --listen (\"\" for none)")
	derpMapPath := fs.String("derp-map", "", "JSON file of further relay regions ({\"regions\": [{\"id\", \"code\", \"url\", \"stun\"}]}), e.g. warren-derp servers")
	admitTokenFile := fs.String("relay-admit-token-file", "", "file holding the token standalone relays (warren-derp --admit-token-file) present at "+coordinator.RelayAdmitPath)
	auditRetention, flowRetention := days(365*24*time.Hour), days(30*24*time.Hour)
	fs.Var(&auditRetention, "audit-retention", "how long audit events are kept, in days (365d) or as a duration (pruned hourly; 0 keeps them forever)")
	fs.Var(&flowRetention, "flow-retention", "how long flow records are kept, by their last packet, in days (30d) or as a duration (pruned hourly in bounded batches; 0 keeps them forever)")
	maxPerIP := fs.Int("max-conns-per-ip", connlimit.DefaultPerSource, "most connections one IP address may hold open to --listen (0: no cap; behind a proxy every client has the proxy's address: raise it or use 0)")
	maxConns := fs.Int("max-conns", 0, "most connections open to --listen in all (0: the file descriptor limit minus a reserve)")
	idleTimeout := fs.Duration("idle-timeout", coordinator.DefaultIdleTimeout, "close an HTTP keep-alive connection idle this long (websockets have their own keep-alives)")
	handshakeTimeout := fs.Duration("handshake-timeout", 10*time.Second, "a node must finish the Noise handshake, and then send each set-up message, within this")
	var logSinks cli.StringList
	fs.Var(&logSinks, "log-sink", "send the audit trail to a SIEM (repeatable): file:///path.jsonl?max-size=100MiB&keep=10, syslog+tcp://host:514, syslog+tls://host:6514?ca-file=F, syslog+udp://host:514, or https://host/path?format=json|splunk|elastic&secret-file=F&token-file=F (see README, Monitoring)")
	alerts := fs.Bool("alerts", true, "record alert events (admin actions, new devices, deny bursts) in the audit trail, for the log sinks and --alert-webhook")
	accessWebhook := fs.String("access-webhook", "", "a webhook URL (Slack-compatible) announcing new just-in-time access requests with the commands to approve or deny them (?format= and ?secret-file= as for --log-sink)")
	consoleIdle := fs.Duration("console-idle-timeout", 30*time.Minute, "end a web console session unused this long")
	consoleMaxAge := fs.Duration("console-max-age", 12*time.Hour, "end any web console session this long after its sign-in")
	accessWebhookSecret := fs.String("access-webhook-secret-file", "", "file holding the HMAC-SHA256 secret that signs --access-webhook's bodies (header X-Warren-Signature)")
	alertWebhook := fs.String("alert-webhook", "", "a Slack-compatible incoming webhook URL that gets the alert events as text (?format=json|... and ?secret-file=F as for --log-sink)")
	logSinksFile := fs.String("log-sinks", "", "file of log sinks, HuJSON: {\"sinks\": [{\"name\": \"siem\", \"url\": \"...\"}]} (in addition to --log-sink)")
	var login loginFlags
	login.register(fs)
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger, err := cli.NewLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	if *adminListen != "" && (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if *adminListen != "" && *tlsCert == "" && !isLoopback(*adminListen) {
		return errors.New("--admin-listen on a non-loopback address needs --tls-cert and --tls-key: API keys must not cross the network in clear text")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *listen, err)
	}
	defer ln.Close()
	url := strings.TrimSuffix(*publicURL, "/")
	if url == "" {
		url = "http://" + reachable(ln.Addr().String())
	}
	relay, err := relayConfig(url, *noRelay, stunListenAddr(*stunListen, ln.Addr()), *derpMapPath, *admitTokenFile)
	if err != nil {
		return err
	}
	loginCfg, err := login.config(url)
	if err != nil {
		return err
	}
	dnsCfg, err := dnsConfig(dnsRecords, dnsRoutes, *domain)
	if err != nil {
		return err
	}
	if *postureMaxAge <= 0 {
		return errors.New("--posture-max-age must be positive, e.g. 15m")
	}
	if auditRetention < 0 || flowRetention < 0 || *maxPerIP < 0 || *maxConns < 0 || *idleTimeout < 0 || *handshakeTimeout < 0 {
		return errors.New("--audit-retention, --flow-retention, --max-conns-per-ip, --max-conns, --idle-timeout and --handshake-timeout cannot be negative")
	}
	sinks, err := logSinkConfigs(logSinks, *logSinksFile)
	if err != nil {
		return err
	}
	c, err := coordinator.New(ctx, coordinator.Config{StateDir: *stateDir, Store: *storeURL, Domain: *domain, DNS: dnsCfg, Logger: logger,
		KeyExpiry: *keyExpiry, EphemeralGrace: *grace, PostureMaxAge: *postureMaxAge, PolicyPath: *policyPath, Relay: relay,
		RequireApproval: *requireApproval, Login: loginCfg, AuditRetention: time.Duration(auditRetention), FlowRetention: time.Duration(flowRetention),
		LogSinks: sinks, Alerts: alertConfig(*alerts), AlertWebhook: *alertWebhook,
		AccessWebhook: *accessWebhook, AccessWebhookSecretFile: *accessWebhookSecret,
		ConsoleIdleTimeout: *consoleIdle, ConsoleMaxAge: *consoleMaxAge,
		HandshakeTimeout: *handshakeTimeout,
		Limits:           coordinator.ServeLimits{IdleTimeout: *idleTimeout, MaxConnsPerSource: capFlag(*maxPerIP), MaxConns: *maxConns}})
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(stdout, "Warren coordinator listening on %s\n", ln.Addr())
	fmt.Fprintf(stdout, "  public URL:       %s\n", url)
	fmt.Fprintf(stdout, "  coordinator key:  %s   (nodes pin this; also served at %s/key)\n", c.PublicKey(), url)
	if c.Relay() != nil {
		fmt.Fprintf(stdout, "  relay:            %s%s (embedded DERP, region %d)\n", url, coordinator.RelayPath, coordinator.DefaultRelayRegionID)
	}
	if a := c.STUNAddr(); a != nil {
		fmt.Fprintf(stdout, "  STUN:             udp %s\n", a)
	}
	if loginCfg.OIDC != nil {
		fmt.Fprintf(stdout, "  OIDC login:       %s (redirect URL %s%s)\n", loginCfg.OIDC.Issuer, url, oidc.CallbackPath)
	}
	if loginCfg.Local {
		fmt.Fprintf(stdout, "  local login:      on (warren-coordinator users passwd / users totp)\n")
	}
	sock := filepath.Join(*stateDir, "admin.sock")
	fmt.Fprintf(stdout, "  admin socket:     %s\n", sock)
	if *bootstrap != "" {
		if err := bootstrapUser(ctx, c, *bootstrap, url, stdout); err != nil {
			return err
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	start := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	start("control listener", func() error { return c.ServeHTTP(ctx, ln, c.Handler()) })
	sln, err := coordinator.ListenAdminSocket(sock)
	if err != nil {
		return err
	}
	start("admin socket", func() error { return c.ServeAdmin(ctx, sln) })
	if *adminListen != "" {
		aln, err := net.Listen("tcp", *adminListen)
		if err != nil {
			return fmt.Errorf("listen %s: %w", *adminListen, err)
		}
		if *tlsCert != "" {
			cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
			if err != nil {
				aln.Close()
				return fmt.Errorf("load TLS key pair: %w", err)
			}
			aln = tls.NewListener(aln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		}
		fmt.Fprintf(stdout, "  admin API:        %s (API key required)\n", aln.Addr())
		start("admin listener", func() error { return c.ServeHTTP(ctx, aln, c.AdminHandler()) })
	}
	if *metricsListen != "" {
		mln, err := net.Listen("tcp", *metricsListen)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("listen %s: %w", *metricsListen, err)
		}
		fmt.Fprintf(stdout, "  metrics:          http://%s/metrics\n", mln.Addr())
		start("metrics listener", func() error { return c.ServeMetrics(ctx, mln) })
	}
	logger.Info("coordinator started", "listen", ln.Addr().String(), "state", *stateDir)
	wg.Wait()
	close(errc)
	logger.Info("coordinator stopped")
	return <-errc
}

// bootstrapUser makes sure an admin user exists and that it has a usable
// pre-auth key. Only when it has none (first start, or its keys expired,
// were revoked or used up) does it create one, valid 24 h, and print it
// with the command to join; otherwise it says a key exists and how to make
// another, so a restart does not mint a new admin credential each time.
func bootstrapUser(ctx context.Context, c *coordinator.Coordinator, name, url string, out io.Writer) error {
	local := registry.Actor{Name: "local:bootstrap", Admin: true}
	u, err := c.Store().GetUserByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		u, err = c.Registry().CreateUser(ctx, local, store.User{Name: name, Email: name, Role: store.RoleAdmin})
	}
	if err != nil {
		return fmt.Errorf("bootstrap user %s: %w", name, err)
	}
	keys, err := c.Store().ListAuthKeys(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap user %s: %w", name, err)
	}
	now := time.Now()
	for _, k := range keys {
		if k.UserID == u.ID && bootstrapUsable(k, now) {
			fmt.Fprintf(out, "\nBootstrap: user %s (admin) already has a usable pre-auth key (%s…, %s); no new key created.\n", u.Name, k.Prefix, expiryText(k.Expiration))
			fmt.Fprintf(out, "A new one: warren-coordinator keys create --user %s --reusable --ttl 24h\n\n", u.Name)
			return nil
		}
	}
	_, plain, err := c.Registry().CreateAuthKey(ctx, local, registry.AuthKeyRequest{UserID: u.ID, Reusable: true, TTL: 24 * time.Hour})
	if err != nil {
		return fmt.Errorf("bootstrap key: %w", err)
	}
	fmt.Fprintf(out, "\nBootstrap: user %s (admin), reusable pre-auth key valid 24h (shown once):\n  %s\n", u.Name, plain)
	fmt.Fprintf(out, "Join a node (paste the key, then Ctrl-D; on stdin it stays out of ps):\n  warren up --coordinator %s --auth-key -\n\n", url)
	return nil
}

// bootstrapUsable reports whether k can join more untagged nodes for its
// user at now, as the bootstrap key does: reusable, untagged, not revoked,
// not expired.
func bootstrapUsable(k store.AuthKey, now time.Time) bool {
	return k.Reusable && len(k.Tags) == 0 && !k.Revoked && (k.Expiration.IsZero() || now.Before(k.Expiration))
}

func expiryText(t time.Time) string {
	if t.IsZero() {
		return "never expires"
	}
	return "expires " + t.UTC().Format(time.RFC3339)
}

// capFlag turns --max-conns-per-ip (0: no cap) into a ServeLimits value
// (where 0 means the default and < 0 no cap).
func capFlag(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// stunListenAddr is where the STUN server listens: flag as given when it
// names a host, else flag's port on the host the control listener ln is
// bound to, so that a coordinator on loopback does not open UDP on every
// interface. An unspecified listener address ([::], 0.0.0.0) leaves flag
// as it is (every interface).
func stunListenAddr(flag string, ln net.Addr) string {
	host, port, err := net.SplitHostPort(flag)
	if err != nil || host != "" {
		return flag
	}
	ta, ok := ln.(*net.TCPAddr)
	if !ok || ta.IP == nil || ta.IP.IsUnspecified() {
		return flag
	}
	return net.JoinHostPort(ta.IP.String(), port)
}

// reachable turns a listen address like [::]:8080 into one a local node can
// dial.
func reachable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func printKey(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", stateDirDefault(), "coordinator state directory (default $WARREN_STATE_DIR, else "+defaultStateDir+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(*stateDir, "coordinator.key"))
	if err != nil {
		return fmt.Errorf("read coordinator key (has the coordinator run with --state-dir %s?): %w", *stateDir, err)
	}
	var k key.ControlPrivate
	if err := k.UnmarshalText([]byte(strings.TrimSpace(string(b)))); err != nil {
		return err
	}
	fmt.Fprintln(stdout, k.Public())
	return nil
}

// relayConfig builds the relay settings from the serve flags: the embedded
// region at the public URL (the coordinator advertises its STUN server on
// the URL's host), more regions
// from a DERP map file, and the admission token for standalone relays.
func relayConfig(publicURL string, noRelay bool, stunListen, derpMapPath, tokenFile string) (coordinator.RelayConfig, error) {
	rc := coordinator.RelayConfig{Disable: noRelay, URL: publicURL + coordinator.RelayPath, STUNListen: stunListen}
	if derpMapPath != "" {
		b, err := os.ReadFile(derpMapPath)
		if err != nil {
			return rc, fmt.Errorf("read --derp-map: %w", err)
		}
		var m wire.DERPMap
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return rc, fmt.Errorf("parse --derp-map %s: %w (want {\"regions\": [{\"id\": 1, \"code\": \"fra\", \"url\": \"https://relay.example.com/derp\", \"stun\": [\"relay.example.com:3478\"]}]})", derpMapPath, err)
		}
		rc.Regions = m.Regions
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return rc, fmt.Errorf("read --relay-admit-token-file: %w", err)
		}
		rc.AdmitToken = strings.TrimSpace(string(b))
		if len(rc.AdmitToken) < 16 {
			return rc, errors.New("--relay-admit-token-file: the token must be at least 16 characters")
		}
	}
	return rc, nil
}

// dnsConfig parses the --dns-record and --dns-route flags; nil when there
// are none.
func dnsConfig(records, routes []string, domain string) (*wire.DNSConfig, error) {
	if len(records) == 0 && len(routes) == 0 {
		return nil, nil
	}
	var cfg wire.DNSConfig
	for _, r := range records {
		rec, err := coordinator.ParseDNSRecord(r, domain)
		if err != nil {
			return nil, fmt.Errorf("--dns-record: %w", err)
		}
		cfg.Records = append(cfg.Records, rec)
	}
	for _, r := range routes {
		rt, err := coordinator.ParseDNSRoute(r)
		if err != nil {
			return nil, fmt.Errorf("--dns-route: %w", err)
		}
		cfg.Routes = append(cfg.Routes, rt)
	}
	return &cfg, nil
}

// logSinkConfigs parses the --log-sink URLs and the --log-sinks file.
func logSinkConfigs(urls []string, file string) ([]export.SinkConfig, error) {
	var out []export.SinkConfig
	for _, u := range urls {
		c, err := export.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("--log-sink: %w", err)
		}
		out = append(out, c)
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--log-sinks: %w", err)
		}
		cs, err := export.ParseFile(b)
		if err != nil {
			return nil, fmt.Errorf("--log-sinks %s: %w", file, err)
		}
		out = append(out, cs...)
	}
	return out, nil
}

// alertConfig is the alert rules' configuration for --alerts: the
// defaults, or nil (off).
func alertConfig(on bool) *alert.Config {
	if !on {
		return nil
	}
	return &alert.Config{}
}
