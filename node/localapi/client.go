package localapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
)

// Client talks to warrend over its unix socket (a named pipe on Windows).
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the socket (or pipe) at path.
func NewClient(path string) *Client {
	c := &Client{path: path}
	c.hc = &http.Client{Transport: &http.Transport{DialContext: c.dialSocket}}
	return c
}

func (c *Client) dialSocket(ctx context.Context, _, _ string) (net.Conn, error) {
	return dial(ctx, c.path)
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://warrend"+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return nil, uerr.Err
		}
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp, nil
}

func readError(resp *http.Response) error {
	var e apiError
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return &statusError{code: resp.StatusCode, msg: e.Error}
	}
	return &statusError{code: resp.StatusCode, msg: fmt.Sprintf("warrend: %s", resp.Status)}
}

// statusError is a failed request's error message and HTTP status.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func call[T any](ctx context.Context, c *Client, method, path string, in any) (T, error) {
	var out T
	resp, err := c.do(ctx, method, path, in)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 32<<20)).Decode(&out); err != nil {
		return out, fmt.Errorf("warrend: bad response: %w", err)
	}
	return out, nil
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return call[Status](ctx, c, http.MethodGet, "/v0/status", nil)
}

// Up joins the mesh, calling progress with each step.
func (c *Client) Up(ctx context.Context, req UpRequest, progress func(string)) (Status, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v0/up", req)
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev upEvent
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Status{}, fmt.Errorf("warrend: up: %w", err)
		}
		switch {
		case ev.Error != "":
			return Status{}, errors.New(ev.Error)
		case ev.Status != nil:
			return *ev.Status, nil
		case ev.Progress != "" && progress != nil:
			progress(ev.Progress)
		}
	}
}

// Down disconnects the node.
func (c *Client) Down(ctx context.Context) (Status, error) {
	return call[Status](ctx, c, http.MethodPost, "/v0/down", nil)
}

// Logout disconnects and forgets the registration.
func (c *Client) Logout(ctx context.Context) (Status, error) {
	return call[Status](ctx, c, http.MethodPost, "/v0/logout", nil)
}

// Ping pings a peer.
func (c *Client) Ping(ctx context.Context, req PingRequest) (PingReport, error) {
	return call[PingReport](ctx, c, http.MethodPost, "/v0/ping", req)
}

// Netcheck reports the node's network situation.
func (c *Client) Netcheck(ctx context.Context) (NetcheckReport, error) {
	return call[NetcheckReport](ctx, c, http.MethodGet, "/v0/netcheck", nil)
}

// Resolve maps a Warren name to a mesh address.
// Posture returns the device's own posture attributes.
func (c *Client) Posture(ctx context.Context) (PostureReport, error) {
	return call[PostureReport](ctx, c, http.MethodGet, "/v0/posture", nil)
}

func (c *Client) Resolve(ctx context.Context, name string) (netip.Addr, error) {
	r, err := call[ResolveResponse](ctx, c, http.MethodGet, "/v0/resolve?name="+url.QueryEscape(name), nil)
	return r.Address, err
}

// Dial connects through the node to hostport (a Warren name or mesh
// address, with a port) and returns the stream.
func (c *Client) Dial(ctx context.Context, hostport string) (net.Conn, error) {
	conn, err := c.dialSocket(ctx, "", "")
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	req, err := http.NewRequest(http.MethodPost, "http://warrend/v0/dial?network=tcp&addr="+url.QueryEscape(hostport), nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", dialUpgrade)
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("warrend: dial %s: %w", hostport, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		err := readError(resp)
		resp.Body.Close()
		conn.Close()
		return nil, err
	}
	if !stop() {
		conn.Close()
		return nil, ctx.Err()
	}
	return &bufferedConn{Conn: conn, r: br}, nil
}

// bufferedConn reads what the response reader buffered before the socket.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// CloseWrite half-closes the stream.
func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return b.Conn.Close()
}
