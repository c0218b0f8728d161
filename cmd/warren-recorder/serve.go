package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/recording"
)

// The identity headers warrend's http-identity exposure sets (and strips
// from what clients send).
const (
	headerNode  = "Warren-Node"
	headerLogin = "Warren-User-Login"
	headerTags  = "Warren-Tags"
)

// serve runs the recorder until ctx ends.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("warren-recorder serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8765", "HTTP address to take recordings on (put warrend --expose 80=THIS in front of it)")
	dir := fs.String("dir", defaultDir, "directory for the recordings (created 0700; files 0600)")
	maxBytes := fs.Int64("max-bytes", recording.DefaultMaxBytes, "largest recording kept; a longer one is cut there and marked incomplete")
	maxUploads := fs.Int("max-uploads", recording.DefaultMaxUploads, "most recordings taken at once; more are refused (the session fails closed unless its rule says otherwise)")
	idle := fs.Duration("idle-timeout", recording.DefaultIdleTimeout, "end an upload that sends nothing, not even a keep-alive, for this long")
	trust := fs.Bool("trust-identity-headers", false, "take the uploader's identity from the Warren-Node, Warren-User-Login and Warren-Tags headers "+
		"(only behind warrend --expose 80=...,http-identity, which sets them and strips forged ones; uploads without them are refused)")
	var viewers cli.StringList
	fs.Var(&viewers, "viewer", "a login (Warren-User-Login) allowed to list and fetch recordings over HTTP; repeatable; needs --trust-identity-headers")
	grace := fs.Duration("shutdown-grace", 10*time.Second, "on SIGTERM, how long uploads under way may go on before they are cut (kept, marked incomplete)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(viewers) > 0 && !*trust {
		return &cli.ExitError{Code: 2, Err: errors.New("--viewer needs --trust-identity-headers: without them the recorder cannot tell who is asking")}
	}
	if *maxBytes <= 0 || *maxUploads <= 0 || *idle <= 0 || *grace < 0 {
		return &cli.ExitError{Code: 2, Err: errors.New("--max-bytes, --max-uploads and --idle-timeout must be positive, --shutdown-grace not negative")}
	}
	log, err := cli.NewLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return &cli.ExitError{Code: 2, Err: err}
	}
	d, err := recording.NewDir(*dir)
	if err != nil {
		return err
	}
	d.MaxBytes, d.MaxUploads, d.IdleTimeout, d.Logger = *maxBytes, *maxUploads, *idle, log

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *listen, err)
	}
	a := authorizer{trust: *trust, viewers: viewers}
	mux := http.NewServeMux()
	mux.Handle("/v1/", recording.Handler(d, a.auth))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	var handlers sync.WaitGroup // so that cut uploads finish their metadata before we return
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handlers.Add(1)
			defer handlers.Done()
			mux.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		// No Read/WriteTimeout: an upload lasts as long as its session;
		// the recordings directory's idle deadline bounds a stalled one.
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	fmt.Fprintf(stdout, "warren-recorder taking recordings at http://%s/v1/record\n", ln.Addr())
	fmt.Fprintf(stdout, "  recordings: %s\n", d.Path())
	if *trust {
		fmt.Fprintf(stdout, "  uploaders:  identified by warrend's identity headers\n")
	} else {
		fmt.Fprintf(stdout, "  uploaders:  as they claim (no --trust-identity-headers)\n")
	}
	log.Info("recorder serving", "listen", ln.Addr().String(), "dir", d.Path(), "trust_identity_headers", *trust)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("recorder shutting down", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("uploads still under way at shutdown: cut", "err", err)
		srv.Close()
	}
	<-errc
	handlers.Wait()
	return nil
}

// authorizer decides who may upload and view.
type authorizer struct {
	trust   bool
	viewers []string
}

func (a authorizer) auth(r *http.Request) (recording.Meta, error) {
	if r.Method != http.MethodPost {
		login := r.Header.Get(headerLogin)
		if !a.trust || login == "" || !slices.Contains(a.viewers, login) {
			return recording.Meta{}, errors.New("recordings are not served to you over HTTP; list them with warren-recorder list on the recorder's host")
		}
		return recording.Meta{}, nil
	}
	m, err := recording.MetaFromRequest(r)
	if err != nil {
		return m, err
	}
	if a.trust {
		node := r.Header.Get(headerNode)
		if node == "" {
			return m, errors.New("no " + headerNode + " header: warren-recorder --trust-identity-headers must sit behind warrend --expose ...,http-identity")
		}
		who := r.Header.Get(headerLogin)
		if who == "" {
			who = r.Header.Get(headerTags)
		}
		m.Uploader = node
		if who != "" {
			m.Uploader += " (" + who + ")"
		}
		if !strings.EqualFold(m.Node, node) {
			// The node that sent it is what counts.
			m.Node = node
		}
	}
	return m, nil
}
