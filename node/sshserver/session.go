package sshserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/warrenmesh/warren/internal/wire"
)

// ptyReq is the terminal a client asked for.
type ptyReq struct {
	term          string
	width, height int
}

// session is one SSH session channel; its serve goroutine owns it and the
// run goroutine it starts.
type session struct {
	c   *conn
	a   *authInfo
	log *slog.Logger
	ch  ssh.Channel
	env []string // the client's accepted variables, "NAME=value"
	pty *ptyReq

	// startReported is closed once the start report is done (nil when
	// none went out through report): the end report waits for it.
	startReported <-chan struct{}

	mu   sync.Mutex
	proc *process  // the running program, nil before and after
	rec  *recorder // the recording, nil when none
}

// session serves a session channel until its program ends or the
// connection goes.
func (c *conn) session(nch ssh.NewChannel, log *slog.Logger) {
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	s := &session{c: c, a: c.authed, log: log, ch: ch}
	ctx, cancel := context.WithCancel(c.ctx)
	var done chan struct{} // closed when run ended
	var copiers sync.WaitGroup
	defer func() {
		cancel()
		if done != nil {
			<-done
		}
		_ = ch.Close()
		copiers.Wait()
	}()
	for {
		select {
		case <-done:
			return
		case req, ok := <-reqs:
			if !ok {
				return
			}
			switch req.Type {
			case "shell", "exec":
				var cmd struct{ Command string }
				if req.Type == "exec" && ssh.Unmarshal(req.Payload, &cmd) != nil || done != nil {
					_ = req.Reply(false, nil)
					continue
				}
				_ = req.Reply(true, nil)
				done = make(chan struct{})
				go func() {
					defer close(done)
					s.run(ctx, cmd.Command, &copiers)
				}()
			default:
				s.request(req, done != nil)
			}
		}
	}
}

// request answers the requests other than shell and exec.
func (s *session) request(req *ssh.Request, started bool) {
	ok := false
	switch req.Type {
	case "pty-req":
		var p struct {
			Term                  string
			Columns, Rows, Wp, Hp uint32
			Modes                 string
		}
		if !started && ssh.Unmarshal(req.Payload, &p) == nil {
			s.pty = &ptyReq{term: p.Term, width: clampSize(p.Columns, 80), height: clampSize(p.Rows, 24)}
			ok = true
		}
	case "env":
		var e struct{ Name, Value string }
		if !started && ssh.Unmarshal(req.Payload, &e) == nil && envAllowed(s.a.rule.AcceptEnv, e.Name) && len(s.env) < 64 {
			s.env = append(s.env, e.Name+"="+e.Value)
			ok = true
		}
	case "window-change":
		var w struct{ Columns, Rows, Wp, Hp uint32 }
		if ssh.Unmarshal(req.Payload, &w) == nil && s.pty != nil {
			width, height := clampSize(w.Columns, 80), clampSize(w.Rows, 24)
			s.mu.Lock()
			s.pty.width, s.pty.height = width, height
			if s.proc != nil {
				s.proc.resize(width, height)
			}
			if s.rec != nil {
				s.rec.resize(width, height)
			}
			s.mu.Unlock()
			ok = true
		}
	default:
		// subsystem (sftp), x11-req, auth-agent-req@openssh.com, signal
		// and the rest are refused.
	}
	if req.WantReply {
		_ = req.Reply(ok, nil)
	}
}

// clampSize keeps a terminal dimension sane.
func clampSize(v uint32, def int) int {
	if v == 0 || v > 10000 {
		return def
	}
	return int(v)
}

// run runs the session's program: recording first if the rule requires
// it, then the start report, the program as the mapped user, its output
// (and the recording's) until it ends or ctx does, the exit status, and
// the end report. Copiers it starts are added to copiers.
func (s *session) run(ctx context.Context, command string, copiers *sync.WaitGroup) {
	srv := s.c.srv
	a := s.a
	started := time.Now()
	call := wire.SSHCall{Session: newSessionID(), Src: a.peer.ID, SrcAddr: a.src, LocalUser: a.login,
		Rule: a.rule.Rule, Command: command, PTY: s.pty != nil}
	log := s.log.With("session", call.Session)
	reported := false // the start call went out
	if a.rule.Record != nil {
		rec, err := s.startRecording(ctx, &call)
		reported = call.Recorder == wire.RecordToCoordinator
		switch {
		case err == nil:
			s.mu.Lock()
			s.rec = rec
			s.mu.Unlock()
			defer rec.close(log)
		case a.rule.Record.FailOpen:
			log.Warn("ssh: no recorder took the session; going on unrecorded (the rule fails open)", "err", err)
			call.Unrecorded = true
			if !reported { // else the coordinator was told already, and got no upload
				call.Recorder, call.Recording = "", ""
			}
		default:
			log.Warn("ssh: session refused: no recorder took it", "err", err)
			s.refuse(&call, reported, "this session must be recorded and no recorder took it ("+err.Error()+")")
			return
		}
	}
	if !reported {
		call.Op = wire.SSHOpStart
		s.startReported = srv.report(call, nil)
	}
	if ctx.Err() != nil { // cut meanwhile
		s.end(call, started, -1, s.c.cutReason())
		return
	}
	spec := procSpec{acct: a.acct, switchTo: srv.root && a.acct.uid != srv.self.uid, command: command, env: s.environ(), pty: s.pty}
	s.mu.Lock()
	proc, err := startProcess(spec)
	s.proc = proc
	s.mu.Unlock()
	if err != nil {
		log.Warn("ssh: start the session's program", "err", err)
		fmt.Fprintf(s.ch.Stderr(), "warren: could not start the session: %v\r\n", err)
		s.end(call, started, -1, "could not start: "+err.Error())
		return
	}
	log.Info("ssh: session started", "command", command, "pty", s.pty != nil, "recorder", call.Recorder)
	var output sync.WaitGroup
	out := func(dst io.Writer, src io.Reader) {
		output.Go(func() { s.copyOut(dst, src) })
	}
	out(s.ch, proc.stdout)
	if proc.stderr != nil {
		out(s.ch.Stderr(), proc.stderr)
	}
	copiers.Go(func() {
		_, _ = io.Copy(proc.stdin, s.ch)
		if proc.stderr != nil { // pipes: the program reads EOF; a PTY stays until the program ends
			_ = proc.stdin.Close()
		}
	})
	outDone := make(chan struct{})
	go func() { output.Wait(); close(outDone) }()
	var broken <-chan struct{}
	if s.rec != nil {
		broken = s.rec.stream.Done()
	}
	reason := ""
	select {
	case <-outDone:
	case <-ctx.Done():
		reason = s.c.cutReason()
		if reason == "" {
			reason = "the client went away"
		}
	case <-broken:
		if !a.rule.Record.FailOpen {
			reason = "the recording broke off"
		}
		if reason == "" { // fail open: go on unrecorded
			select {
			case <-outDone:
			case <-ctx.Done():
				reason = "the client went away"
			}
		}
	}
	code := -1 // cut: no exit status
	if reason != "" {
		proc.kill()
		proc.wait()
		<-outDone
		fmt.Fprintf(s.ch.Stderr(), "\r\nwarren: session ended: %s\r\n", reason)
	} else {
		code = proc.wait()
	}
	s.mu.Lock()
	s.proc = nil
	s.mu.Unlock()
	if code >= 0 {
		_, _ = s.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
	}
	_ = s.ch.CloseWrite()
	log.Info("ssh: session ended", "exit", code, "reason", reason, "duration", time.Since(started).Round(time.Millisecond))
	s.end(call, started, code, reason)
}

// copyOut copies a program's output to the client and the recording.
func (s *session) copyOut(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			s.mu.Lock()
			rec := s.rec
			s.mu.Unlock()
			if rec != nil {
				rec.output(buf[:n])
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// refuse tells the client why its session does not start, and the
// coordinator (as an end, when it was told of the start; else a deny).
func (s *session) refuse(call *wire.SSHCall, reported bool, why string) {
	fmt.Fprintf(s.ch.Stderr(), "warren: %s\r\n", why)
	_, _ = s.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{1}))
	if reported {
		s.end(*call, time.Now(), -1, why)
		return
	}
	c := *call
	c.Reason = why
	s.c.srv.denied(c)
}

// end reports the session's end to the coordinator.
func (s *session) end(call wire.SSHCall, started time.Time, code int, reason string) {
	call.Op = wire.SSHOpEnd
	call.Duration = time.Since(started)
	call.ExitCode = code
	call.Reason = reason
	s.c.srv.report(call, s.startReported)
}

// environ returns the program's environment: the client's accepted
// variables, then the session's own (which win).
func (s *session) environ() []string {
	a := s.a
	env := append([]string(nil), s.env...)
	env = append(env,
		"HOME="+a.acct.home, "USER="+a.acct.name, "LOGNAME="+a.acct.name, "SHELL="+a.acct.shell,
		"PATH="+defaultPath(a.acct.uid),
		"SSH_CLIENT="+a.src.Addr().String()+" "+strconv.Itoa(int(a.src.Port()))+" "+strconv.Itoa(wire.SSHPort),
		"WARREN_SSH_PEER="+a.peer.Name,
	)
	if s.pty != nil {
		term := s.pty.term
		if term == "" {
			term = "xterm"
		}
		env = append(env, "TERM="+term)
	}
	return env
}

// newSessionID returns "ssh-" and 16 random hex digits.
func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "ssh-" + hex.EncodeToString(b[:])
}
