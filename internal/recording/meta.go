// Package recording carries SSH session recordings from the node that
// hosts a session to a recorder, and stores them there.
//
// The upload protocol: the node POSTs the recording (an asciicast v2
// stream, Content-Type application/x-asciicast) to the recorder's
// /v1/record with a chunked body it writes as the session runs, and the
// session's Meta as JSON in the Warren-Recording-Meta request header
// (non-ASCII escaped as \uXXXX), plus "Authorization: Bearer TOKEN" when
// the recorder gave it a token (the coordinator does). The recorder
// answers 201 Created with a Location header at once, before the body
// ends (full duplex), and with Warren-Recording-Keepalive, the interval at
// which an idle uploader sends a lone newline (dropped, not stored) so
// that the recorder's idle read deadline does not end a quiet session.
// When the body ends, or the recorder gives up on it (too large, idle,
// disk error), the recorder writes one JSON Result line as the response
// body: the uploader learns from that whether the whole recording was
// stored, and hangs up (a recorder that gave up reads and drops what
// still arrives until then, so the connection is not reset under the
// result).
//
// The client half (Start, Stream) is what the node uses; the server half
// (Dir, Handler) is what the coordinator and warren-recorder serve.
// Stored recordings are files NAME.cast (0600, in a 0700 directory) with
// their metadata in NAME.meta. This package never interprets a
// recording's content (see internal/asciicast), never decides who may
// record (Handler's caller passes an auth function), and never lets an
// ID name a file outside its directory.
package recording

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// MetaHeader is the request header carrying an upload's Meta as JSON.
const MetaHeader = "Warren-Recording-Meta"

// KeepaliveHeader is the 201 response header giving the keep-alive
// interval the uploader should use, as a Go duration ("20s").
const KeepaliveHeader = "Warren-Recording-Keepalive"

// ContentType is the recording's media type.
const ContentType = "application/x-asciicast"

// Meta describes a recorded session. Uploaders send it; what a recorder
// stores is what its auth function returned (the coordinator's own view
// of the session, or what a node claimed).
type Meta struct {
	Session   string    `json:"session"`          // the node's session ID, "ssh-..."
	Node      string    `json:"node"`             // the node hosting the session
	User      string    `json:"user"`             // the mesh user who logged in (login)
	LocalUser string    `json:"localUser"`        // the Unix user the session ran as
	Src       string    `json:"src"`              // the connecting peer: name and address
	Started   time.Time `json:"started,omitzero"` // when the session began
	// Uploader is who sent the recording as the recorder itself verified
	// it (the coordinator from its token, warren-recorder from trusted
	// identity headers); empty when the other fields are only the
	// uploader's claim. Uploaders do not set it.
	Uploader string `json:"uploader,omitempty"`
}

// MaxMetaBytes bounds the Warren-Recording-Meta header.
const MaxMetaBytes = 4 << 10

// headerValue encodes m for MetaHeader: JSON with DEL and every
// non-ASCII character escaped, so the value is printable ASCII.
func (m Meta) headerValue() (string, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	var s strings.Builder
	for _, r := range string(b) {
		switch {
		case r < 0x7f: // JSON already escaped the control characters below ' '
			s.WriteRune(r)
		case r > 0xFFFF:
			r -= 0x10000
			fmt.Fprintf(&s, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		default:
			fmt.Fprintf(&s, `\u%04x`, r)
		}
	}
	return s.String(), nil
}

// MetaFromRequest decodes the Meta an uploader sent in MetaHeader (as the
// uploader claims it, without Uploader; a missing header is an empty
// Meta).
func MetaFromRequest(r *http.Request) (Meta, error) {
	var m Meta
	v := r.Header.Get(MetaHeader)
	if v == "" {
		return m, nil
	}
	if len(v) > MaxMetaBytes {
		return m, fmt.Errorf("%s: longer than %d bytes", MetaHeader, MaxMetaBytes)
	}
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return m, fmt.Errorf("%s: %w", MetaHeader, err)
	}
	m.Uploader = "" // only a recorder's own knowledge goes there
	return m, nil
}

// Result is the JSON line a recorder answers once an upload ends.
type Result struct {
	ID       string `json:"id"`
	Size     int64  `json:"size"`            // bytes stored
	Complete bool   `json:"complete"`        // the whole recording was stored
	Error    string `json:"error,omitempty"` // why not
}

// parseKeepalive reads KeepaliveHeader; 0 when absent or malformed.
func parseKeepalive(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0
	}
	return d
}
