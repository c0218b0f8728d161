package sshserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/internal/asciicast"
	"github.com/warrenmesh/warren/internal/recording"
	"github.com/warrenmesh/warren/internal/wire"
)

// recorder is a session's recording under way: the cast written to the
// upload stream.
type recorder struct {
	stream *recording.Stream
	cast   *asciicast.Writer
	client *http.Client // to a peer recorder: its connections end with the recording

	mu     sync.Mutex
	failed bool // a write failed: stop writing (the stream's Done says why)
}

// output records what the program printed.
func (r *recorder) output(p []byte) {
	r.write(func() error { return r.cast.Output(p) })
}

// resize records the terminal's new size.
func (r *recorder) resize(width, height int) {
	r.write(func() error { return r.cast.Resize(width, height) })
}

func (r *recorder) write(f func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.failed && f() != nil {
		r.failed = true
	}
}

// close ends the recording and waits for the recorder to confirm it.
func (r *recorder) close(log *slog.Logger) {
	r.mu.Lock()
	if !r.failed {
		_ = r.cast.Flush()
	}
	r.mu.Unlock()
	if err := r.stream.Close(); err != nil {
		log.Warn("ssh: the recording did not end cleanly", "err", err)
	}
	if r.client != nil {
		r.client.CloseIdleConnections()
	}
}

// startRecording starts the session's recording: to the first of the
// rule's recorder peers that takes it (call.Recorder and call.Recording
// say which and where), or with none, to the coordinator, which is told
// of the session's start to get the upload URL (call.Recorder is then
// wire.RecordToCoordinator: the start call went out, even when the
// upload then failed).
func (s *session) startRecording(ctx context.Context, call *wire.SSHCall) (*recorder, error) {
	srv := s.c.srv
	a := s.a
	meta := recording.Meta{Session: call.Session, User: a.peer.User, LocalUser: a.login,
		Src: a.peer.Name + " " + a.src.String()}
	srv.mu.Lock()
	nm := srv.nm
	srv.mu.Unlock()
	if nm != nil {
		meta.Node = nm.Self.Name
	}
	if meta.User == "" {
		meta.User = fmt.Sprint(a.peer.Tags)
	}
	width, height := 80, 24
	h := asciicast.Header{Env: map[string]string{"SHELL": a.acct.shell}, Title: a.login + "@" + meta.Node + " from " + a.peer.Name}
	if s.pty != nil {
		width, height = s.pty.width, s.pty.height
		h.Env["TERM"] = s.pty.term
	}
	h.Width, h.Height = width, height
	var errs []error
	open := func(c *http.Client, url, token string) (*recorder, error) {
		sctx, cancel := context.WithTimeout(ctx, srv.cfg.CallTimeout)
		defer cancel()
		meta.Started = time.Now()
		st, err := recording.Start(sctx, c, url, token, meta)
		if err != nil {
			return nil, err
		}
		cw, err := asciicast.NewWriter(st, h, nil)
		if err != nil {
			_ = st.Close()
			return nil, err
		}
		return &recorder{stream: st, cast: cw}, nil
	}
	for _, id := range a.rule.Record.Recorders {
		peer, ok := nm.Peer(id)
		if !ok || len(peer.Addresses) == 0 || srv.cfg.DialMesh == nil {
			errs = append(errs, fmt.Errorf("recorder node %d: not reachable from this node", id))
			continue
		}
		addr := netip.AddrPortFrom(peer.Addresses[0].Addr(), wire.RecorderPort)
		client := &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return srv.cfg.DialMesh(ctx, "tcp", addr)
			},
		}}
		url := "http://" + net.JoinHostPort(addr.Addr().String(), strconv.Itoa(wire.RecorderPort)) + "/v1/record"
		rec, err := open(client, url, "")
		if err != nil {
			client.CloseIdleConnections()
			errs = append(errs, fmt.Errorf("recorder %s: %w", peer.Name, err))
			continue
		}
		rec.client = client
		call.Recorder, call.Recording = peer.Name, rec.stream.Location()
		return rec, nil
	}
	if len(a.rule.Record.Recorders) > 0 {
		return nil, errors.Join(errs...)
	}
	if tags := a.rule.Record.RecorderTags; len(tags) > 0 {
		// The rule names its recorders: the coordinator is no stand-in.
		return nil, fmt.Errorf("no node tagged %s is a peer of this node", strings.Join(tags, " or "))
	}
	// The coordinator records: the start call gets the upload URL.
	call.Op, call.Recorder = wire.SSHOpStart, wire.RecordToCoordinator
	cctx, cancel := context.WithTimeout(ctx, srv.cfg.CallTimeout)
	r, err := srv.cfg.Control.SSHCall(cctx, *call, nil)
	cancel()
	switch {
	case err != nil:
		return nil, fmt.Errorf("the coordinator: %w", err)
	case r.Code != "":
		return nil, fmt.Errorf("the coordinator: %s %s", r.Code, r.Message)
	case r.RecordURL == "":
		return nil, errors.New("the coordinator gave no upload URL")
	}
	rec, err := open(srv.cfg.HTTPClient, r.RecordURL, r.RecordToken)
	if err != nil {
		return nil, fmt.Errorf("the coordinator: %w", err)
	}
	call.Recording = rec.stream.Location()
	return rec, nil
}
