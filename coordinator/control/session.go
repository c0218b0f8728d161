package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/flowlog"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/noise"
	"github.com/warrenmesh/warren/internal/wire"
)

// session is one authenticated control channel.
type session struct {
	srv    *Server
	conn   *noise.Conn
	remote string
	log    *slog.Logger
	// answersKeepAlives: the node answers every KeepAlive, so a channel
	// that stays silent across keep-alives is a dead one.
	answersKeepAlives bool
	// version is the node's protocol version (RegisterRequest.Version).
	version int
	// unanswered counts the keep-alives sent since the node's last
	// message (the writer adds, the reader clears).
	unanswered atomic.Int32
	// silent is set when a watchdog closed the channel because the node
	// sent nothing in time.
	silent atomic.Bool
	// access holds a token for each access call in flight (at most
	// wire.MaxAccessCalls); calls counts their goroutines, which stream
	// waits for.
	access chan struct{}
	calls  sync.WaitGroup
	// ssh holds the SSH call slots (ssh.go); their goroutines count in
	// calls too.
	ssh *sshState
}

// errSilent reports a node that sent nothing within the bound: it is not
// audited (nothing was decided), only counted.
var errSilent = errors.New("node sent nothing in time")

// read reads one message from the node, refusing oversized frames.
func (s *session) read() (wire.Message, error) {
	return s.readLimit(func(wire.Type) int { return wire.MaxNodeMessage })
}

// readLimit reads one message from the node with a limit by type.
func (s *session) readLimit(limit func(wire.Type) int) (wire.Message, error) {
	m, err := wire.ReadMessageLimit(s.conn, limit)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// watch returns a watchdog that closes the channel unless it is stopped
// within d; it first counts the silent client as an unauthenticated
// failure (so the count is complete when the client sees its channel
// close).
func (s *session) watch(d time.Duration) *time.Timer {
	return time.AfterFunc(d, func() {
		s.silent.Store(true)
		s.srv.cfg.Failures.Record("control.silent", s.remote, fmt.Sprintf("%v within %v", errSilent, d))
		_ = s.conn.Close()
	})
}

// readWithin reads one message that must arrive within d: during set-up
// the coordinator waits for messages the node sends at once, so a client
// that sends nothing is cut after d instead of holding its connection.
func (s *session) readWithin(d time.Duration) (wire.Message, error) {
	dog := s.watch(d)
	defer dog.Stop()
	m, err := s.read()
	if err != nil && s.silent.Load() {
		return nil, fmt.Errorf("%w within %v", errSilent, d)
	}
	return m, err
}

// fail tells the node why the channel closes, records a protocol
// violation and returns err. Before the registry has let the machine in
// (action control.register) anyone with a fresh machine key can cause
// one, so it is counted, never stored; after that it is audited.
func (s *session) fail(ctx context.Context, action string, err error) error {
	werr := errorFor(err)
	_ = wire.WriteMessage(s.conn, werr)
	if !errors.Is(err, wire.ErrTooLarge) && !errors.Is(err, wire.ErrUnknownType) && !errors.Is(err, wire.ErrFrameVersion) &&
		!errors.Is(err, errBadMessage) && !errors.Is(err, errVersion) {
		return err
	}
	if action == "control.register" {
		s.srv.cfg.Failures.Record(action, s.remote, err.Error())
		return err
	}
	_ = s.srv.cfg.Audit.Record(ctx, audit.Event{Actor: "node:" + s.conn.Peer().String(), Action: action,
		Remote: s.remote, Outcome: audit.Denied, Detail: map[string]any{"error": audit.Truncate(err.Error(), audit.MaxDetail)}})
	return err
}

func (s *session) run(ctx context.Context) error {
	bound := s.srv.cfg.HandshakeTimeout
	m, err := s.readWithin(bound)
	if errors.Is(err, errSilent) {
		return err
	}
	if err != nil {
		return s.fail(ctx, "control.register", fmt.Errorf("%w: %w", errBadMessage, err))
	}
	req, ok := m.(*wire.RegisterRequest)
	if !ok {
		return s.fail(ctx, "control.register", fmt.Errorf("%w: want RegisterRequest first, got %v", errBadMessage, m.WireType()))
	}
	if req.Version < wire.MinProtocolVersion || req.Version > wire.ProtocolVersion {
		return s.fail(ctx, "control.register", fmt.Errorf("%w: node speaks %d", errVersion, req.Version))
	}
	node, err := s.srv.cfg.Registry.Register(ctx, s.conn.Peer(), req, s.remote)
	var login *registry.LoginRequired
	if errors.As(err, &login) {
		// Interactive login: the node shows the URL to its user and asks
		// again with it as Followup; that request waits for the sign-in.
		if err := wire.WriteMessage(s.conn, &wire.RegisterResponse{AuthURL: login.URL}); err != nil {
			return err
		}
		// Assign, not declare: the follow-up's outcome is the session's.
		// The node sends it at once; the wait for the sign-in itself is
		// Register's, bounded by the login's timeout.
		m, err = s.readWithin(bound)
		if errors.Is(err, errSilent) {
			return err
		}
		if err != nil {
			return s.fail(ctx, "control.register", fmt.Errorf("%w: %w", errBadMessage, err))
		}
		follow, ok := m.(*wire.RegisterRequest)
		if !ok || follow.Followup != login.URL || follow.NodeKey != req.NodeKey || follow.AuthKey != "" {
			return s.fail(ctx, "control.register", fmt.Errorf("%w: want the login follow-up for %s", errBadMessage, login.URL))
		}
		node, err = s.srv.cfg.Registry.Register(ctx, s.conn.Peer(), follow, s.remote)
	}
	if err != nil {
		return s.fail(ctx, "node.register", err)
	}
	self, _ := s.srv.cfg.Engine.Node(wire.NodeID(node.ID))
	if err := wire.WriteMessage(s.conn, &wire.RegisterResponse{Authorized: true, Self: &self.Wire}); err != nil {
		return err
	}
	m, err = s.readWithin(bound)
	if errors.Is(err, errSilent) {
		return err
	}
	if err != nil {
		return s.fail(ctx, "control.map", fmt.Errorf("%w: %w", errBadMessage, err))
	}
	mreq, ok := m.(*wire.MapRequest)
	if !ok {
		return s.fail(ctx, "control.map", fmt.Errorf("%w: want MapRequest, got %v", errBadMessage, m.WireType()))
	}
	s.answersKeepAlives = req.Version >= wire.KeepAliveAnswerVersion
	s.version = req.Version
	if err := s.srv.cfg.Registry.AdvertiseRoutes(ctx, node.ID, mreq.AdvertiseRoutes, s.remote); err != nil {
		return s.fail(ctx, "control.map", err)
	}
	s.reportPosture(ctx, node.ID, mreq.Posture)
	return s.stream(ctx, node.ID, mreq)
}

// stream sends the netmap until the channel or the stream ends, while
// reading the node's updates.
func (s *session) stream(ctx context.Context, id store.NodeID, req *wire.MapRequest) error {
	st, err := s.srv.cfg.Engine.SubscribeVersion(wire.NodeID(id), s.version)
	if err != nil {
		return s.fail(ctx, "control.map", store.ErrNotFound)
	}
	defer st.Close()
	reg := s.srv.cfg.Registry
	reg.Connected(ctx, id, validEndpoints(req.Endpoints), req.HomeRelay)
	defer reg.Disconnected(context.WithoutCancel(ctx), id)
	s.log.Info("node connected", "node", id)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	writerDone := make(chan error, 1)
	go func() { writerDone <- s.write(ctx, st, req.Stream) }()
	readErr := s.readUpdates(ctx, id)
	cancel()
	_ = s.conn.Close() // unblock a writer stuck on a dead peer
	s.calls.Wait()     // access calls end with ctx
	if werr := <-writerDone; werr != nil && !errors.Is(werr, context.Canceled) {
		return werr
	}
	return readErr
}

// write sends each netmap response, and a keep-alive every KeepAlive
// period (busy or idle: the node's answers are what proves it alive). With
// stream unset it sends the full map and returns.
func (s *session) write(ctx context.Context, st *netmap.Stream, stream bool) error {
	every := s.srv.cfg.KeepAlive
	due := time.Now().Add(every)
	for {
		nctx, ncancel := context.WithDeadline(ctx, due)
		resp, err := st.Next(nctx)
		ncancel()
		switch {
		case err == nil:
			if err := wire.WriteMessage(s.conn, resp); err != nil {
				return fmt.Errorf("send netmap: %w", err)
			}
			if !stream {
				return nil
			}
			if time.Now().Before(due) {
				continue
			}
			fallthrough
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			// Counting keep-alives rather than timing the node's silence
			// keeps a busy coordinator (or node) from cutting a healthy
			// node: it takes SilenceKeepAlives sent with no answer at all.
			if s.answersKeepAlives && s.unanswered.Load() >= SilenceKeepAlives {
				_ = s.conn.Close()
				return fmt.Errorf("node answered none of the last %d keep-alives", SilenceKeepAlives)
			}
			if err := wire.WriteMessage(s.conn, &wire.KeepAlive{}); err != nil {
				return fmt.Errorf("send keep-alive: %w", err)
			}
			s.unanswered.Add(1)
			due = time.Now().Add(every)
		case errors.Is(err, netmap.ErrReplaced), errors.Is(err, registry.ErrNodeDeleted):
			_ = wire.WriteMessage(s.conn, errorFor(err))
			_ = s.conn.Close()
			return err
		default:
			return err
		}
	}
}

// readUpdates handles the node's messages until the channel fails. Every
// message counts as the node's answer to the keep-alives sent so far.
func (s *session) readUpdates(ctx context.Context, id store.NodeID) error {
	for {
		m, err := s.readLimit(wire.StreamLimit)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, wire.ErrTooLarge) || errors.Is(err, wire.ErrUnknownType) || errors.Is(err, wire.ErrFrameVersion) {
				return s.fail(ctx, "control.update", fmt.Errorf("%w: %w", errBadMessage, err))
			}
			return err
		}
		s.unanswered.Store(0)
		switch m := m.(type) {
		case *wire.UpdateRequest:
			// An update carrying only a posture report (a heartbeat every
			// few minutes) says nothing about endpoints: leave them, and
			// spare every peer a patch.
			if m.Posture == nil || len(m.Endpoints) > 0 || m.HomeRelay != 0 {
				s.srv.cfg.Registry.UpdateEndpoints(ctx, id, validEndpoints(m.Endpoints), m.HomeRelay)
			}
			s.reportPosture(ctx, id, m.Posture)
		case *wire.KeepAlive:
		case *wire.AccessCall:
			s.startAccess(ctx, id, m)
		case *wire.SSHCall:
			s.startSSH(ctx, id, m)
		case *wire.FlowBatch:
			if err := s.storeFlows(ctx, id, m); err != nil {
				return err
			}
		case *wire.LogoutRequest:
			if err := s.srv.cfg.Registry.Logout(ctx, id); err != nil {
				return s.fail(ctx, "control.logout", err)
			}
			s.log.Info("node logged out", "node", id)
			_ = wire.WriteMessage(s.conn, &wire.Error{Code: wire.CodeLoggedOut, Message: "logged out: run warren up to join again"})
			return errLoggedOut
		default:
			return s.fail(ctx, "control.update", fmt.Errorf("%w: %v during streaming", errBadMessage, m.WireType()))
		}
	}
}

// storeFlows stores a flow batch and acknowledges it once it is durable
// (without a flow log configured: at once, storing nothing). A batch of
// too many records breaks the protocol; a failure to store it ends the
// channel unacknowledged, so the node sends it again.
func (s *session) storeFlows(ctx context.Context, id store.NodeID, b *wire.FlowBatch) error {
	if in := s.srv.cfg.Flows; in != nil {
		res, err := in.Store(ctx, id, s.remote, b)
		if errors.Is(err, flowlog.ErrTooMany) {
			return s.fail(ctx, "control.flows", fmt.Errorf("%w: %w", errBadMessage, err))
		}
		if err != nil {
			return err
		}
		if res.Refused > 0 {
			s.log.Warn("flow records refused", "node", id, "records", res.Refused)
		}
	}
	if err := wire.WriteMessage(s.conn, &wire.FlowAck{Seq: b.Seq}); err != nil {
		return fmt.Errorf("send flow ack: %w", err)
	}
	return nil
}

// reportPosture records the node's posture report, if it sent one. A
// refused report (a custom: attribute, a malformed one) is audited by the
// registry and costs the node its report, not its channel: the
// attributes held before stay until they grow stale.
func (s *session) reportPosture(ctx context.Context, id store.NodeID, rep *wire.PostureReport) {
	if rep == nil {
		return
	}
	if err := s.srv.cfg.Registry.ReportPosture(ctx, id, rep, s.remote); err != nil && ctx.Err() == nil {
		s.log.Warn("posture report refused", "node", id, "err", err)
	}
}

// validEndpoints drops endpoints no peer could use.
func validEndpoints(eps []netip.AddrPort) []netip.AddrPort {
	out := eps[:0:0]
	for _, ep := range eps {
		if ep.IsValid() && ep.Port() != 0 && !ep.Addr().IsUnspecified() && !ep.Addr().IsMulticast() {
			out = append(out, ep)
		}
	}
	return out
}
