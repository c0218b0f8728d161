package control

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// connBuffer is the size of each of a control channel's read and write
// buffers once the websocket takes the connection over. net/http hands a
// hijacked connection over with 4 KiB each way, 8 KiB for every connected
// node; the channel's messages are mostly a few hundred bytes (updates,
// keep-alives, patches), and a frame larger than the buffer is read or
// written straight from or to the socket, so a smaller buffer limits
// nothing, it costs a larger message one more system call.
const connBuffer = 1 << 10

// smallBuffers is the http.ResponseWriter the websocket accepts on: its
// Hijack hands the connection over with buffers of size bytes instead of
// net/http's.
type smallBuffers struct {
	http.ResponseWriter
	size int
}

// Hijack takes the connection over from net/http. Bytes net/http already
// read past the request (a client may send its first frame at once) are
// served before the connection's.
func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// The bytes net/http read past the request stay buffered in the new
	// reader (the websocket takes them from its buffer and resets it onto
	// the connection).
	br := bufio.NewReaderSize(conn, w.size)
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn), max(w.size, n))
		if _, err := br.Peek(n); err != nil {
			_ = conn.Close()
			return nil, nil, err
		}
	}
	// net/http flushes the response before handing the connection over;
	// anything its writer still held goes out before the websocket's.
	if brw.Writer.Buffered() > 0 {
		if err := brw.Writer.Flush(); err != nil {
			_ = conn.Close()
			return nil, nil, err
		}
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, w.size)), nil
}
