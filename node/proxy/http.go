package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"
)

// maxHeaderBytes bounds an HTTP proxy request's head; over it the client
// gets 431.
const maxHeaderBytes = 16 << 10

// serveHTTP runs an HTTP proxy connection whose first byte was read. It
// serves one request per connection: a CONNECT tunnel, or one absolute-URI
// request whose response is sent with "Connection: close" (clients open a
// new connection for the next one). Once the target is dialed there is no
// deadline: a slow target holds the connection until it answers, closes,
// or the Server is closed. When not admitted it reads the request only to
// reply 503.
func (s *Server) serveHTTP(c net.Conn, first byte, admitted bool) {
	client := c.RemoteAddr().String()
	lr := &io.LimitedReader{R: io.MultiReader(bytes.NewReader([]byte{first}), c), N: maxHeaderBytes}
	br := bufio.NewReaderSize(lr, 4<<10)
	req, err := http.ReadRequest(br)
	if err != nil {
		var ne net.Error
		switch {
		case lr.N <= 0:
			s.log.Debug("http: request head too large", "client", client, "limit", maxHeaderBytes)
			s.httpFail(c, http.StatusRequestHeaderFieldsTooLarge,
				fmt.Sprintf("warren: request header too large (limit %d bytes)", maxHeaderBytes))
		case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
			s.log.Debug("http: client too slow to send a request", "client", client)
		case errors.Is(err, net.ErrClosed):
		default:
			s.log.Debug("http: malformed request", "client", client, "err", err)
			s.httpFail(c, http.StatusBadRequest, "warren: malformed proxy request: "+err.Error())
		}
		return
	}
	lr.N = math.MaxInt64 // what follows the head is body or tunnel, not header
	if !admitted {
		s.log.Warn("http: refusing client: too many connections", "client", client, "max_conns", s.cfg.MaxConns)
		s.httpFail(c, http.StatusServiceUnavailable,
			fmt.Sprintf("warren: proxy busy: %d connections open; try again later", s.cfg.MaxConns))
		return
	}
	if req.Method == http.MethodConnect {
		s.serveConnect(c, br, req)
		return
	}
	s.serveAbsolute(c, br, req)
}

// serveConnect dials req's host:port and splices c to it.
func (s *Server) serveConnect(c net.Conn, br *bufio.Reader, req *http.Request) {
	// The request target, not a Host header: "CONNECT /path" is no tunnel.
	host, port, err := splitHostPort(req.URL.Host, "")
	if err != nil {
		s.httpFail(c, http.StatusBadRequest, "warren: CONNECT needs host:port: "+err.Error())
		return
	}
	_ = c.SetDeadline(time.Time{}) // the dial has its own bound
	up, err := s.dialTarget(host, port)
	if err != nil {
		s.httpDialFail(c, host, port, err)
		return
	}
	defer s.closeConn(up)
	_ = c.SetWriteDeadline(time.Now().Add(s.handshake))
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		return
	}
	_ = c.SetWriteDeadline(time.Time{})
	s.log.Debug("http: CONNECT", "client", c.RemoteAddr().String(), "target", displayHost(host)+":"+strconv.Itoa(int(port)))
	s.splice(c, bufferedReader(c, br), up, up)
}

// serveAbsolute forwards one absolute-URI request (GET http://db:8080/x)
// in origin-form, without hop-by-hop headers and with "Connection: close",
// and relays the response. An upgrade (101) becomes a tunnel.
func (s *Server) serveAbsolute(c net.Conn, br *bufio.Reader, req *http.Request) {
	if !req.URL.IsAbs() || req.URL.Host == "" {
		s.httpFail(c, http.StatusBadRequest,
			"warren: this is a proxy: send CONNECT host:port or an absolute URI (GET http://host:port/path)")
		return
	}
	if req.URL.Scheme != "http" {
		s.httpFail(c, http.StatusBadRequest,
			fmt.Sprintf("warren: cannot proxy %s:// URLs in plain form; use CONNECT", displayHost(req.URL.Scheme)))
		return
	}
	host, port, err := splitHostPort(req.URL.Host, "80")
	if err != nil {
		s.httpFail(c, http.StatusBadRequest, "warren: bad host in request URI: "+err.Error())
		return
	}
	_ = c.SetDeadline(time.Time{})
	up, err := s.dialTarget(host, port)
	if err != nil {
		s.httpDialFail(c, host, port, err)
		return
	}
	defer s.closeConn(up)

	upgrade := prepareRequest(req)
	// The request (and its body, streamed from the client) goes out while
	// the response comes back, so a server may answer before the body ends.
	wrote := make(chan struct{})
	var writeErr error
	go func() { // joined below
		defer close(wrote)
		writeErr = req.Write(countingWriter{up, &s.bytesOut})
	}()
	defer func() {
		_ = up.Close()
		_ = c.Close() // unblocks a body read from the client
		<-wrote
	}()

	ubr := bufio.NewReader(up)
	for {
		resp, err := http.ReadResponse(ubr, req)
		if err != nil {
			s.log.Info("http: bad response from target", "target", displayHost(host), "err", err)
			s.httpFail(c, http.StatusBadGateway,
				fmt.Sprintf("warren: bad response from %s: %v", displayHost(host), err))
			return
		}
		out := countingWriter{c, &s.bytesIn}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols && upgrade:
			if err := writeResponseHead(out, resp); err != nil {
				return
			}
			<-wrote
			if writeErr != nil {
				return
			}
			s.splice(c, bufferedReader(c, br), up, bufferedReader(up, ubr))
			return
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			if err := writeResponseHead(out, resp); err != nil {
				return
			}
			continue
		}
		removeHopByHop(resp.Header)
		resp.Close = true
		if err := resp.Write(out); err != nil {
			s.log.Debug("http: relaying response failed", "target", displayHost(host), "err", err)
		}
		_ = resp.Body.Close()
		select {
		case <-wrote: // nothing else reads c: drain it so closing doesn't reset
			lingerClose(c)
		default: // the client is still sending a body nobody wants
			closeWrite(c)
		}
		return
	}
}

// prepareRequest turns a proxy request into the one sent to the target:
// origin-form, no hop-by-hop or proxy headers, one request per connection.
// It reports whether the client asked for a protocol upgrade, which is kept.
func prepareRequest(req *http.Request) (upgrade bool) {
	up := req.Header.Get("Upgrade")
	upgrade = up != "" && hasToken(req.Header.Values("Connection"), "upgrade")
	removeHopByHop(req.Header)
	if upgrade {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", up)
	} else {
		req.Close = true
	}
	req.RequestURI = ""
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""} // don't add Go's default
	}
	return upgrade
}

// hopByHop are the headers that describe one connection, not the message.
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopByHop deletes hop-by-hop headers and those named in Connection.
func removeHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
}

// hasToken reports whether a comma-separated header value lists token.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(f), token) {
				return true
			}
		}
	}
	return false
}

// writeResponseHead writes a response's status line and headers only.
func writeResponseHead(w io.Writer, resp *http.Response) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/%d.%d %s\r\n", resp.ProtoMajor, resp.ProtoMinor, resp.Status)
	_ = resp.Header.Write(&b)
	b.WriteString("\r\n")
	_, err := w.Write(b.Bytes())
	return err
}

// bufferedReader returns a reader for c that first yields what br has
// already buffered from it; c itself when br holds nothing.
func bufferedReader(c net.Conn, br *bufio.Reader) io.Reader {
	n := br.Buffered()
	if n == 0 {
		return c
	}
	b, _ := br.Peek(n)
	return io.MultiReader(bytes.NewReader(bytes.Clone(b)), c)
}

// splitHostPort splits "host:port" (or "[v6]:port"); a missing port is
// defaultPort, and an error when that is empty.
func splitHostPort(hostport, defaultPort string) (string, uint16, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		if defaultPort == "" || strings.Count(hostport, ":") > 0 && !strings.HasPrefix(hostport, "[") {
			return "", 0, fmt.Errorf("split %q: %w", displayHost(hostport), err)
		}
		host, port = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), defaultPort
	}
	if host == "" {
		return "", 0, fmt.Errorf("empty host in %q", displayHost(hostport))
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("bad port %q", displayHost(port))
	}
	return host, uint16(p), nil
}

// httpDialFail tells an HTTP client why its target could not be reached.
func (s *Server) httpDialFail(c net.Conn, host string, port uint16, err error) {
	if errors.Is(err, errServerClosed) {
		return
	}
	s.log.Info("http: cannot reach target", "client", c.RemoteAddr().String(),
		"target", displayHost(host), "port", port, "err", err)
	target := displayHost(host) + ":" + strconv.Itoa(int(port))
	switch classify(err) {
	case failUnknownHost:
		s.httpFail(c, http.StatusBadGateway,
			fmt.Sprintf("warren: %q: no such node, or not reachable under the current policy", displayHost(host)))
	case failRefused:
		s.httpFail(c, http.StatusBadGateway, fmt.Sprintf("warren: connection to %s refused", target))
	case failTimeout:
		s.httpFail(c, http.StatusGatewayTimeout,
			fmt.Sprintf("warren: timed out connecting to %s (limit %s)", target, s.cfg.DialTimeout))
	default:
		s.httpFail(c, http.StatusBadGateway, fmt.Sprintf("warren: cannot connect to %s: %v", target, err))
	}
}

// httpFail writes a short text/plain error response and lingers so the
// client reads it.
func (s *Server) httpFail(c net.Conn, code int, msg string) {
	body := msg + "\n"
	resp := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", code, http.StatusText(code), len(body), body)
	_ = c.SetWriteDeadline(time.Now().Add(s.handshake))
	if _, err := io.WriteString(c, resp); err != nil {
		return
	}
	lingerClose(c)
}
