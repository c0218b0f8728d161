package recording

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the client side.
const (
	// minKeepalive is the shortest keep-alive interval a recorder may ask
	// for; maxKeepalive is used when it asks for none.
	minKeepalive = 10 * time.Millisecond
	maxKeepalive = 30 * time.Second
	// closeWait is how long Close waits for the recorder's Result after
	// the body ended, before giving up on the upload.
	closeWait = 30 * time.Second
	// maxResultBytes bounds the response body a Stream reads.
	maxResultBytes = 64 << 10
)

// Stream is a recording being uploaded: Write sends cast bytes (whole
// lines, as asciicast.Writer writes them), Close ends it. Done is closed
// when the upload has ended, after Close or because it broke (the
// recorder failed, went away, or refused more); Err then says why.
// Write and Close may be called from different goroutines.
type Stream struct {
	pw       *io.PipeWriter
	pr       *io.PipeReader
	location string
	cancel   context.CancelFunc

	wmu     sync.Mutex // serialises Write and keep-alives, so lines stay whole
	lastNL  bool       // the last byte written was a newline (wmu)
	lastW   time.Time  // when (wmu)
	closing atomic.Bool

	done chan struct{}
	err  error // set before done is closed
	wg   sync.WaitGroup
}

// Start begins uploading a recording to url (a recorder's /v1/record, or
// the coordinator's upload URL), with token as a bearer token when not
// empty, and returns once the recorder has answered 201 Created with a
// Location. ctx bounds only that wait (give it a timeout: the session
// waits on it); the upload itself lasts until Close or until it breaks.
func Start(ctx context.Context, c *http.Client, url, token string, m Meta) (*Stream, error) {
	if c == nil {
		c = http.DefaultClient
	}
	mv, err := m.headerValue()
	if err != nil {
		return nil, fmt.Errorf("recording metadata: %w", err)
	}
	if len(mv) > MaxMetaBytes {
		return nil, fmt.Errorf("recording metadata longer than %d bytes", MaxMetaBytes)
	}
	pr, pw := io.Pipe()
	upCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	req, err := http.NewRequestWithContext(upCtx, http.MethodPost, url, pr)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("recorder %s: %w", url, err)
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set(MetaHeader, mv)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	type answer struct {
		resp *http.Response
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := c.Do(req)
		answered <- answer{resp, err}
	}()
	var a answer
	select {
	case a = <-answered:
	case <-ctx.Done():
		cancel()
		pr.CloseWithError(ctx.Err())
		a = <-answered
		if a.err == nil {
			a.resp.Body.Close()
		}
		return nil, fmt.Errorf("recorder %s: no answer: %w", url, ctx.Err())
	}
	fail := func(err error) (*Stream, error) {
		cancel()
		pr.CloseWithError(err)
		return nil, err
	}
	if a.err != nil {
		return fail(fmt.Errorf("recorder %s: %w", url, a.err))
	}
	if a.resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(a.resp.Body, 512))
		a.resp.Body.Close()
		return fail(fmt.Errorf("recorder %s refused the recording: %s: %s", url, a.resp.Status, strings.TrimSpace(string(msg))))
	}
	loc, err := a.resp.Location()
	if err != nil {
		a.resp.Body.Close()
		return fail(fmt.Errorf("recorder %s: 201 without a Location", url))
	}
	s := &Stream{
		pw: pw, pr: pr, cancel: cancel,
		location: loc.String(),
		lastNL:   true,
		lastW:    time.Now(),
		done:     make(chan struct{}),
	}
	keep := parseKeepalive(a.resp.Header.Get(KeepaliveHeader))
	if keep <= 0 || keep > maxKeepalive {
		keep = maxKeepalive
	}
	keep = max(keep, minKeepalive)
	s.wg.Add(2)
	go s.awaitResult(a.resp.Body)
	go s.keepalive(keep)
	return s, nil
}

// Location is where the recorder keeps the recording (an absolute URL).
func (s *Stream) Location() string { return s.location }

// Done is closed when the upload has ended.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Err is why the upload ended: nil before Done is closed, and after a
// Close that the recorder confirmed stored the whole recording.
func (s *Stream) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Write sends p. It blocks while the recorder is slower than the session
// (its idle deadline ends a stalled upload), and fails once the upload
// has ended.
func (s *Stream) Write(p []byte) (int, error) {
	if s.closing.Load() {
		return 0, errors.New("recording: write after Close")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	n, err := s.pw.Write(p)
	if n > 0 {
		s.lastNL = p[n-1] == '\n'
		s.lastW = time.Now()
	}
	if err != nil {
		if e := s.Err(); e != nil {
			err = e
		}
		return n, fmt.Errorf("recording: %w", err)
	}
	return n, nil
}

// Close ends the recording and waits (at most half a minute) for the
// recorder to confirm it stored all of it; the error says when it did
// not. After Close, Done is closed and every goroutine Start began has
// ended.
func (s *Stream) Close() error {
	s.closing.Store(true)
	s.pw.Close()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		s.cancel()
		<-s.done
	}
	s.wg.Wait()
	return s.err
}

// awaitResult reads the recorder's Result when the upload ends, then
// ends the Stream.
func (s *Stream) awaitResult(body io.ReadCloser) {
	defer s.wg.Done()
	res, got, rerr := readResult(body)
	body.Close()
	var err error
	switch {
	case got && res.Complete && s.closing.Load():
	case got && res.Error != "":
		err = fmt.Errorf("recorder ended the recording: %s", res.Error)
	case got:
		err = errors.New("recorder ended the recording before the session did")
	case rerr != nil:
		err = fmt.Errorf("recording upload broke: %w", rerr)
	default:
		err = errors.New("recorder ended the upload without a result")
	}
	s.err = err
	if err == nil {
		err = io.ErrClosedPipe
	}
	s.pr.CloseWithError(err) // pending and later Writes fail at once
	s.cancel()
	close(s.done)
}

// keepalive sends a lone newline when nothing was written for a while,
// between lines only, so an idle session's upload stays open.
func (s *Stream) keepalive(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		if !s.wmu.TryLock() {
			continue // a Write is under way
		}
		if s.lastNL && !s.closing.Load() && time.Since(s.lastW) >= every/2 {
			if _, err := s.pw.Write([]byte{'\n'}); err == nil {
				s.lastW = time.Now()
			}
		}
		s.wmu.Unlock()
	}
}

// readResult reads a recorder's response body (at most maxResultBytes)
// up to its first line that is a JSON Result, and returns that and
// whether there was one; err is a read error. It returns at that line,
// not at the body's end: a recorder that gave up on an upload goes on
// reading it until the uploader hangs up.
func readResult(body io.Reader) (res Result, got bool, err error) {
	sc := bufio.NewScanner(io.LimitReader(body, maxResultBytes))
	for sc.Scan() {
		if json.Unmarshal(sc.Bytes(), &res) == nil {
			return res, true, nil
		}
		res = Result{}
	}
	return res, false, sc.Err()
}
