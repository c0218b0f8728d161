// Command warren-derp runs a Warren DERP relay: it forwards WireGuard
// packets between nodes over websocket (at /derp, with a latency probe at
// /derp/probe and a health check at /healthz) and answers STUN on UDP. It
// asks the coordinator which node keys are admitted, long-polls it for
// node keys that lost admission (and drops them at once), and never sees
// anything but ciphertext.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/derp"
	"github.com/warrenmesh/warren/derp/stunserver"
	"github.com/warrenmesh/warren/internal/atomicfile"
	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/connlimit"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/metrics"
	"github.com/warrenmesh/warren/internal/version"
)

const defaultKeyFile = "/var/lib/warren-derp/relay.key"

func main() {
	cli.Main("warren-derp", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout, os.Stderr) })
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("warren-derp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":8443", "HTTP(S) address of the relay (/derp, /derp/probe, /healthz)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate file (serve HTTPS; with --tls-key)")
	tlsKey := fs.String("tls-key", "", "TLS private key file")
	stunAddr := fs.String("stun", ":3478", "UDP address of the STUN server (empty: no STUN)")
	keyFile := fs.String("key-file", defaultKeyFile, "relay private key file (0600; created if missing)")
	admitURL := fs.String("admit-url", "", "coordinator admission endpoint, e.g. https://coordinator.example.com/api/v1/relay/admit")
	tokenFile := fs.String("admit-token-file", "", "file holding the bearer token for --admit-url")
	admitHTTP := fs.Bool("insecure-admit-http", false, "allow a plain-http --admit-url to a non-loopback coordinator (a private network you trust; the token crosses it in clear text)")
	admitAll := fs.Bool("insecure-admit-all", false, "admit every node key without asking a coordinator (tests and development only)")
	rateLimit := fs.Int("client-rate", 0, "per-client send limit in bytes/s (0: 125000000, i.e. 1 Gbit/s; -1: unlimited)")
	maxPerIP := fs.Int("max-conns-per-ip", connlimit.DefaultPerSource, "most connections one IP address may hold open (0: no cap; behind a proxy every client has the proxy's address: raise it or use 0)")
	maxConns := fs.Int("max-conns", 0, "most connections open in all (0: the file descriptor limit minus a reserve)")
	idleTimeout := fs.Duration("idle-timeout", 2*time.Minute, "close an HTTP keep-alive connection idle this long (relay websockets have their own keep-alives)")
	metricsListen := fs.String("metrics-listen", "", "serve Prometheus metrics at /metrics on this address, e.g. 127.0.0.1:9102 (empty: off)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintln(stdout, "warren-derp", version.String())
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see warren-derp --help)", fs.Arg(0))
	}
	log, err := cli.NewLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if *maxPerIP < 0 || *maxConns < 0 || *idleTimeout < 0 {
		return errors.New("--max-conns-per-ip, --max-conns and --idle-timeout cannot be negative")
	}

	var admit derp.Admitter
	var watcher *httpAdmitter // pushes the coordinator's revocations
	admission := ""
	switch {
	case *admitURL != "" && *admitAll:
		return errors.New("--admit-url and --insecure-admit-all exclude each other")
	case *admitURL != "":
		a, err := newAdmitterFromFlags(*admitURL, *tokenFile, *admitHTTP, log)
		if err != nil {
			return err
		}
		admit, admission, watcher = a.Admit, a.url.Redacted(), a
	case *admitAll:
		admission = "NONE: every node key is admitted (--insecure-admit-all)"
	default:
		return errors.New("the relay needs to know which nodes are admitted: give --admit-url (the coordinator's " +
			"/api/v1/relay/admit) and --admit-token-file, or --insecure-admit-all for tests")
	}

	priv, created, err := loadOrCreateKey(*keyFile, log)
	if err != nil {
		return err
	}
	relay, err := derp.NewServer(derp.ServerConfig{PrivateKey: priv, Admit: admit, RateBytesPerSec: *rateLimit, Logger: log})
	if err != nil {
		return err
	}
	defer relay.Close()

	raw, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *listen, err)
	}
	if *maxConns == 0 {
		*maxConns = connlimit.DefaultTotal()
	}
	// Caps before TLS: a refused connection costs no handshake.
	limited := connlimit.New(raw, connlimit.Config{PerSource: *maxPerIP, Total: *maxConns,
		OnRefuse: func(a netip.Addr, reason string) { log.Debug("connection refused", "remote", a, "reason", reason) }})
	var ln net.Listener = limited
	scheme := "http"
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
			NextProtos: []string{"http/1.1"}}) // websockets need HTTP/1.1
		scheme = "https"
	}
	var pc net.PacketConn
	if *stunAddr != "" {
		if pc, err = net.ListenPacket("udp", *stunAddr); err != nil {
			ln.Close()
			return fmt.Errorf("listen STUN %s: %w", *stunAddr, err)
		}
		defer pc.Close()
	}

	var mln net.Listener
	if *metricsListen != "" {
		if mln, err = net.Listen("tcp", *metricsListen); err != nil {
			ln.Close()
			return fmt.Errorf("listen metrics %s: %w", *metricsListen, err)
		}
	}

	base := scheme + "://" + reachable(ln.Addr().String())
	fmt.Fprintf(stdout, "Warren DERP relay %s\n", relay.PublicKey())
	if created {
		fmt.Fprintf(stdout, "  key file:   %s (new)\n", *keyFile)
	} else {
		fmt.Fprintf(stdout, "  key file:   %s\n", *keyFile)
	}
	fmt.Fprintf(stdout, "  relay URL:  %s/derp   (probe %s/derp/probe, health %s/healthz)\n", base, base, base)
	if pc != nil {
		fmt.Fprintf(stdout, "  STUN:       udp %s\n", pc.LocalAddr())
	} else {
		fmt.Fprintf(stdout, "  STUN:       off\n")
	}
	fmt.Fprintf(stdout, "  admission:  %s\n", admission)
	if mln != nil {
		fmt.Fprintf(stdout, "  metrics:    http://%s%s\n", reachable(mln.Addr().String()), metrics.Path)
	}

	srv := &http.Server{
		Handler:           handler(relay),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // websockets are exempt once upgraded:
		WriteTimeout:      30 * time.Second, // the relay bounds their handshake and silence
		IdleTimeout:       *idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug), // TLS handshake noise from scanners
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("relay listener: %w", err)
			cancel()
		}
	}()
	if pc != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := stunserver.Serve(ctx, pc, log); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	if mln != nil {
		reg := metrics.NewRegistry()
		reg.MustRegister(relay.Collector())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := metrics.Serve(ctx, mln, reg); err != nil {
				errc <- fmt.Errorf("metrics listener: %w", err)
				cancel()
			}
		}()
	}
	if watcher != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			watcher.watchRevocations(ctx, relay)
		}()
	}
	log.Info("relay started", "key", relay.PublicKey(), "listen", ln.Addr().String(), "stun", *stunAddr)
	<-ctx.Done()
	shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(shutdownCtx) // does not wait for websockets…
	stop()
	relay.Close() // …this ends them
	wg.Wait()
	close(errc)
	st := relay.Stats()
	cs := limited.Stats()
	log.Info("relay stopped", "frames_forwarded", st.FramesForwarded, "bytes_forwarded", st.BytesForwarded,
		"handshake_failures", st.HandshakeFailures, "refused_per_ip", cs.RefusedPerSource, "refused_total", cs.RefusedTotal)
	return <-errc
}

// handler routes the relay's HTTP paths.
func handler(relay *derp.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/derp", relay)
	mux.Handle("/derp/", relay) // /derp/probe
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Warren DERP relay: nodes connect at /derp", http.StatusNotFound)
	})
	return mux
}

// newAdmitterFromFlags checks --admit-url and reads --admit-token-file.
func newAdmitterFromFlags(rawURL, tokenFile string, allowHTTP bool, log *slog.Logger) (*httpAdmitter, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--admit-url %q: want an http(s) URL like https://coordinator.example.com/api/v1/relay/admit", rawURL)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) && !allowHTTP {
		return nil, fmt.Errorf("--admit-url %s: use https; the admit token must not cross the network in clear text (or --insecure-admit-http on a private network)", u.Redacted())
	}
	if tokenFile == "" {
		return nil, errors.New("--admit-url needs --admit-token-file (the coordinator's token for this relay)")
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("read admit token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" || strings.ContainsAny(token, "\r\n") {
		return nil, fmt.Errorf("admit token file %s must hold the token on one line", tokenFile)
	}
	warnIfOpen(tokenFile, "admit token file", log)
	return newHTTPAdmitter(u, token, nil, log), nil
}

// loadOrCreateKey reads the relay key from path, or creates one there
// (0600, written atomically) if the file does not exist.
func loadOrCreateKey(path string, log *slog.Logger) (key.RelayPrivate, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k := key.NewRelay()
		text, _ := k.MarshalText()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return k, false, fmt.Errorf("create relay key directory: %w", err)
		}
		if err := atomicfile.Write(path, append(text, '\n'), 0o600); err != nil {
			return k, false, fmt.Errorf("write relay key %s: %w", path, err)
		}
		return k, true, nil
	}
	if err != nil {
		return key.RelayPrivate{}, false, fmt.Errorf("read relay key: %w", err)
	}
	var k key.RelayPrivate
	if err := k.UnmarshalText(bytes.TrimSpace(b)); err != nil {
		return k, false, fmt.Errorf("relay key %s: %w (the file holds one line, privrkey:<64 hex digits>; move it away to make a new key)", path, err)
	}
	warnIfOpen(path, "relay key file", log)
	return k, false, nil
}

// warnIfOpen warns when a secret file is readable by others.
func warnIfOpen(path, what string, log *slog.Logger) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn(what+" is readable by other users; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// reachable turns a listen address like [::]:8443 into one a local client
// can dial.
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
