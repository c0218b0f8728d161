package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// Just-in-time access (warren access …, warren login --mfa): the CLI asks
// the daemon, which passes the call to the coordinator over its control
// channel as this node. The socket's permission model is warren up's: whoever
// may steer the node acts as the node's user.

// AccessCall is one access operation; Op is one of wire's AccessOp*.
type AccessCall struct {
	Op      string        `json:"op"`
	Dst     string        `json:"dst,omitempty"`
	For     time.Duration `json:"forNs,omitempty"`
	Reason  string        `json:"reason,omitempty"`
	Request string        `json:"request,omitempty"`
	Pending bool          `json:"pending,omitempty"`
}

// AccessReply is the coordinator's final answer: Code empty on success,
// otherwise one of wire's Access* codes with Message.
type AccessReply struct {
	Code     string               `json:"code,omitempty"`
	Message  string               `json:"message,omitempty"`
	Requests []wire.AccessRequest `json:"requests,omitempty"`
}

// accessEvent is one line of the /v0/access response stream: a sign-in
// URL (a step-up the user must complete), then the reply or an error.
type accessEvent struct {
	AuthURL string       `json:"authURL,omitempty"`
	Reply   *AccessReply `json:"reply,omitempty"`
	Error   string       `json:"error,omitempty"`
}

func (s *Server) access(w http.ResponseWriter, r *http.Request) {
	var call AccessCall
	if !readJSON(w, r, &call) {
		return
	}
	if call.Op == "" {
		writeError(w, http.StatusBadRequest, errors.New("access: op required"))
		return
	}
	emit := ndjson[accessEvent](w)
	rep, err := s.cfg.Backend.Access(r.Context(), call, func(u string) { emit(accessEvent{AuthURL: u}) })
	if err != nil {
		emit(accessEvent{Error: err.Error()})
		return
	}
	emit(accessEvent{Reply: &rep})
}

// Access runs one access call through the daemon, calling onAuthURL with
// the sign-in URL of a step-up before the final reply. A refusal is a
// reply with a Code; an error means the call could not be made (or its
// outcome is unknown).
func (c *Client) Access(ctx context.Context, call AccessCall, onAuthURL func(string)) (AccessReply, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v0/access", call)
	if err != nil {
		return AccessReply{}, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev accessEvent
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return AccessReply{}, fmt.Errorf("warrend: access: %w", err)
		}
		switch {
		case ev.Error != "":
			return AccessReply{}, errors.New(ev.Error)
		case ev.Reply != nil:
			return *ev.Reply, nil
		case ev.AuthURL != "" && onAuthURL != nil:
			onAuthURL(ev.AuthURL)
		}
	}
}
