package recording

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/internal/atomicfile"
)

// Defaults for a Dir's zero fields.
const (
	DefaultMaxBytes    = 1 << 30 // 1 GiB a recording
	DefaultIdleTimeout = 90 * time.Second
	DefaultMaxUploads  = 64
)

// How long, and how much, an upload that was given up is still read
// while its uploader learns the result.
const (
	drainTime  = 5 * time.Second
	drainBytes = 16 << 20
)

// MaxIDLen bounds a recording ID.
const MaxIDLen = 128

// Dir stores recordings in one directory: ID.cast, the recording as it
// arrived, and ID.meta, its Meta and whether it is complete. Its fields
// may be set after NewDir and before the first upload.
type Dir struct {
	// MaxBytes bounds one recording (0: DefaultMaxBytes); an upload that
	// grows past it is cut there and kept, marked incomplete.
	MaxBytes int64
	// IdleTimeout ends an upload that sends nothing, not even a
	// keep-alive, for this long (0: DefaultIdleTimeout). Uploaders are
	// asked to send keep-alives at a third of it.
	IdleTimeout time.Duration
	// MaxUploads bounds the uploads under way at once (0:
	// DefaultMaxUploads); more are refused with 503.
	MaxUploads int
	// LocationPrefix is put before a recording's ID in the Location of an
	// upload's 201 (empty: "/v1/recordings/", where Handler serves it).
	LocationPrefix string
	// Logger, if set, logs uploads (never their content).
	Logger *slog.Logger

	path   string
	mu     sync.Mutex
	active int
}

// NewDir opens (creating it if needed, mode 0700) the directory at path.
func NewDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("recordings directory: %w", err)
	}
	if err := os.Chmod(path, 0o700); err != nil {
		return nil, fmt.Errorf("recordings directory: %w", err)
	}
	return &Dir{path: path}, nil
}

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

// Info describes a stored recording.
type Info struct {
	ID       string    `json:"id"`
	Meta     Meta      `json:"meta"`
	Size     int64     `json:"size"`             // bytes stored
	Complete bool      `json:"complete"`         // the upload ended normally
	Reason   string    `json:"reason,omitempty"` // why it is incomplete, when known
	Modified time.Time `json:"modified"`         // the last byte's arrival
}

// stored is what ID.meta holds.
type stored struct {
	Meta     Meta   `json:"meta"`
	Complete bool   `json:"complete"`
	Reason   string `json:"reason,omitempty"`
}

const (
	castExt = ".cast"
	metaExt = ".meta"
)

// ValidID reports whether id may name a recording: 1 to MaxIDLen ASCII
// letters, digits, '-' and '_', starting with a letter or digit. Such an
// ID is a plain file name on every OS: no separators, no dots, no
// reserved device name prefix can matter since a suffix always follows.
func ValidID(id string) bool {
	if id == "" || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// ErrNotFound is Open's error for an ID with no recording.
var ErrNotFound = errors.New("no such recording")

// Open returns the recording id's cast, as far as it has arrived.
func (d *Dir) Open(id string) (io.ReadCloser, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("recording %q: %w", id, ErrNotFound)
	}
	f, err := os.Open(filepath.Join(d.path, id+castExt))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("recording %s: %w", id, ErrNotFound)
	}
	return f, err
}

// CastPath is the file holding the recording id's cast.
func (d *Dir) CastPath(id string) (string, error) {
	if !ValidID(id) {
		return "", fmt.Errorf("recording %q: %w", id, ErrNotFound)
	}
	return filepath.Join(d.path, id+castExt), nil
}

// Stat describes the recording id.
func (d *Dir) Stat(id string) (Info, error) {
	if !ValidID(id) {
		return Info{}, fmt.Errorf("recording %q: %w", id, ErrNotFound)
	}
	fi, err := os.Stat(filepath.Join(d.path, id+castExt))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("recording %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Info{}, err
	}
	return d.info(id, fi), nil
}

// info reads id's metadata; a missing or unreadable ID.meta leaves it
// empty and incomplete.
func (d *Dir) info(id string, fi fs.FileInfo) Info {
	in := Info{ID: id, Size: fi.Size(), Modified: fi.ModTime().UTC()}
	b, err := os.ReadFile(filepath.Join(d.path, id+metaExt))
	if err != nil {
		in.Reason = "no metadata"
		return in
	}
	var st stored
	if err := json.Unmarshal(b, &st); err != nil {
		in.Reason = "unreadable metadata"
		return in
	}
	in.Meta, in.Complete, in.Reason = st.Meta, st.Complete, st.Reason
	return in
}

// List describes every stored recording, oldest first.
func (d *Dir) List() ([]Info, error) {
	ents, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("list recordings: %w", err)
	}
	var out []Info
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), castExt)
		if !ok || !ValidID(id) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, d.info(id, fi))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Meta.Started.Equal(out[j].Meta.Started) {
			return out[i].Meta.Started.Before(out[j].Meta.Started)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// create makes a new, empty ID.cast: the session's ID when that is a
// valid and unused one, else "rec-" and random hex (an upload never
// replaces another recording).
func (d *Dir) create(session string) (string, *os.File, error) {
	for try := 0; try < 8; try++ {
		id := session
		if try > 0 || !ValidID(id) {
			var b [12]byte
			rand.Read(b[:])
			id = "rec-" + hex.EncodeToString(b[:])
		}
		f, err := os.OpenFile(filepath.Join(d.path, id+castExt), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return id, f, nil
	}
	return "", nil, errors.New("no free recording name")
}

func (d *Dir) writeMeta(id string, st stored) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(d.path, id+metaExt), b, 0o600)
}

func (d *Dir) acquire() bool {
	max := d.MaxUploads
	if max <= 0 {
		max = DefaultMaxUploads
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.active >= max {
		return false
	}
	d.active++
	return true
}

func (d *Dir) release() {
	d.mu.Lock()
	d.active--
	d.mu.Unlock()
}

// Upload takes one recording: it answers 201 Created with the
// recording's Location at once (the request and response then run full
// duplex), stores the request body as it arrives, and, when the body ends
// or the upload is given up (MaxBytes, IdleTimeout, a write error), writes
// a Result line and returns. What arrived is kept either way; only an
// upload whose body ended normally within MaxBytes is complete. m is what
// is stored as the recording's metadata (Started defaults to now).
func (d *Dir) Upload(w http.ResponseWriter, r *http.Request, m Meta) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(w, "POST a recording here", http.StatusMethodNotAllowed)
		return
	}
	if !d.acquire() {
		refuse(w, "too many recordings under way; try again later", http.StatusServiceUnavailable)
		return
	}
	defer d.release()
	if m.Started.IsZero() {
		m.Started = time.Now().UTC()
	}
	id, f, err := d.create(m.Session)
	if err != nil {
		d.log().Error("recording: create", "err", err)
		refuse(w, "cannot store the recording", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	if err := d.writeMeta(id, stored{Meta: m, Reason: "upload under way"}); err != nil {
		d.log().Error("recording: write metadata", "id", id, "err", err)
		refuse(w, "cannot store the recording", http.StatusInternalServerError)
		return
	}

	rc := http.NewResponseController(w)
	if err := rc.EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		d.log().Warn("recording: full duplex", "err", err)
	}
	// The upload lasts as long as the session: no server-wide write
	// timeout may end it (the idle read deadline bounds it instead).
	_ = rc.SetWriteDeadline(time.Time{})
	idle := d.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	prefix := d.LocationPrefix
	if prefix == "" {
		prefix = "/v1/recordings/"
	}
	w.Header().Set("Location", prefix+id)
	w.Header().Set(KeepaliveHeader, (idle / 3).String())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	if err := rc.Flush(); err != nil {
		d.log().Warn("recording: flush 201", "id", id, "err", err)
	}
	d.log().Info("recording started", "id", id, "session", m.Session, "node", m.Node, "user", m.User)

	max := d.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	size, cerr := d.copy(f, r.Body, rc, idle, max)
	if err := f.Sync(); err != nil && cerr == nil {
		cerr = fmt.Errorf("store recording: %w", err)
	}
	res := Result{ID: id, Size: size, Complete: cerr == nil}
	st := stored{Meta: m, Complete: cerr == nil}
	if cerr != nil {
		res.Error, st.Reason = cerr.Error(), cerr.Error()
	}
	if err := d.writeMeta(id, st); err != nil {
		d.log().Error("recording: write metadata", "id", id, "err", err)
		if cerr == nil {
			res.Complete, res.Error = false, "cannot store the recording's metadata"
		}
	}
	b, _ := json.Marshal(res)
	w.Write(append(b, '\n'))
	rc.Flush()
	if cerr != nil {
		// The uploader is still sending. Keep reading (and dropping) what
		// it sends until it has read the result and hung up: closing on
		// unread data would reset the connection, and the uploader's HTTP
		// client could lose the result. Bounded in time and bytes; then
		// stop reading for good, so that net/http does not wait either.
		_ = rc.SetReadDeadline(time.Now().Add(drainTime))
		io.Copy(io.Discard, io.LimitReader(r.Body, drainBytes))
		_ = rc.SetReadDeadline(time.Now())
	}
	d.log().Info("recording ended", "id", id, "bytes", size, "complete", res.Complete, "reason", res.Error)
}

// copy stores body in f, dropping keep-alives (a newline right after a
// newline, or at the start), up to max bytes, with an idle read deadline.
func (d *Dir) copy(f *os.File, body io.Reader, rc *http.ResponseController, idle time.Duration, max int64) (int64, error) {
	buf := make([]byte, 32<<10)
	var size int64
	afterNL := true
	deadlines := true
	for {
		if deadlines {
			if err := rc.SetReadDeadline(time.Now().Add(idle)); errors.Is(err, http.ErrNotSupported) {
				deadlines = false
			}
		}
		n, err := body.Read(buf)
		if n > 0 {
			p := dropBlankLines(buf[:n], &afterNL)
			if size+int64(len(p)) > max {
				p = p[:max-size]
				if _, werr := f.Write(p); werr != nil {
					return size, fmt.Errorf("store recording: %w", werr)
				}
				return size + int64(len(p)), fmt.Errorf("recording larger than %d bytes: cut there", max)
			}
			if _, werr := f.Write(p); werr != nil {
				return size, fmt.Errorf("store recording: %w", werr)
			}
			size += int64(len(p))
		}
		switch {
		case err == io.EOF:
			return size, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			return size, fmt.Errorf("upload idle for %v: ended", idle)
		case err != nil:
			return size, fmt.Errorf("upload broke: %w", err)
		}
	}
}

// dropBlankLines removes from p, in place, each newline that follows a
// newline (or starts the stream); afterNL carries that state across calls.
func dropBlankLines(p []byte, afterNL *bool) []byte {
	if bytes.IndexByte(p, '\n') < 0 {
		if len(p) > 0 {
			*afterNL = false
		}
		return p
	}
	out := p[:0]
	for _, c := range p {
		if c == '\n' {
			if *afterNL {
				continue
			}
			*afterNL = true
		} else {
			*afterNL = false
		}
		out = append(out, c)
	}
	return out
}

func (d *Dir) log() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// refuse answers an upload with an error without reading its body: the
// uploader streams it and may never end it, so the server must not wait
// to drain it (as net/http does before answering, and before reusing the
// connection); the connection is closed instead.
func refuse(w http.ResponseWriter, msg string, code int) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	w.Header().Set("Connection", "close")
	http.Error(w, msg, code)
}
