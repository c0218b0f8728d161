package derp

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
)

const (
	// corkMax is the most a corked connection buffers before writing anyway.
	corkMax = 64 << 10
	// corkBufioSize is the size of the websocket library's write buffer
	// above the cork.
	corkBufioSize = 256
)

// corkWriter sits under the websocket library's buffered writer, which
// flushes after every message. While corked it collects those flushes, so
// a client's writer can send a burst of queued frames in one system call;
// uncork writes them out. Only the client's writer corks, and it always
// uncorks before it waits for more frames, so frames the library writes on
// its own (close frames) are delayed by at most one burst.
type corkWriter struct {
	mu     sync.Mutex
	conn   net.Conn
	corked bool
	buf    *[]byte // from corkPool while corked
}

var corkPool = sync.Pool{New: func() any {
	b := make([]byte, 0, corkMax)
	return &b
}}

func (c *corkWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return c.conn.Write(p)
	}
	if len(*c.buf)+len(p) > corkMax {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > corkMax {
			return c.conn.Write(p)
		}
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

func (c *corkWriter) cork() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		c.corked = true
		c.buf = corkPool.Get().(*[]byte)
	}
}

// uncork writes what was collected and stops collecting.
func (c *corkWriter) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return nil
	}
	err := c.flushLocked()
	c.corked = false
	corkPool.Put(c.buf)
	c.buf = nil
	return err
}

func (c *corkWriter) flushLocked() error {
	if len(*c.buf) == 0 {
		return nil
	}
	_, err := c.conn.Write(*c.buf)
	*c.buf = (*c.buf)[:0]
	return err
}

// corkResponseWriter hands the websocket library a connection whose writes
// go through a corkWriter.
type corkResponseWriter struct {
	http.ResponseWriter
	cork *corkWriter
}

// Hijack implements http.Hijacker.
func (w *corkResponseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("flush before hijack: %w", err)
	}
	w.cork.conn = conn
	// The library frames every message in this bufio.Writer and flushes
	// it; the cork buffers bursts, so a small one is enough: a header or a
	// control frame fits, and a payload that does not goes straight to the
	// cork. An idle client then holds no write buffer of note.
	brw.Writer = bufio.NewWriterSize(w.cork, corkBufioSize)
	return conn, brw, nil
}
