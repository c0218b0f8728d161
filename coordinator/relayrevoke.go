package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/warrenmesh/warren/derp"
	"github.com/warrenmesh/warren/internal/key"
)

const (
	// RelayRevocationsPath is where standalone relays long-poll for node
	// keys that lost relay admission (deleted, disabled, expired,
	// re-keyed), so that they drop them at once rather than at their next
	// periodic recheck.
	RelayRevocationsPath = "/api/v1/relay/revocations"
	// revocationLogLen is how many revocations are kept for relays that
	// poll late; a relay further behind is told to recheck everything.
	revocationLogLen = 1024
	// revocationPoll is how long a poll waits for a revocation before it
	// is answered with none.
	revocationPoll = 25 * time.Second
)

// revocations hands node keys that stopped being active to the relays:
// the embedded relay disconnects them directly, standalone relays learn
// them from RelayRevocationsPath. The netmap engine is its only writer.
type revocations struct {
	epoch string // this coordinator run; a relay that saw another epoch rechecks everything

	mu     sync.Mutex
	relay  *derp.Server     // embedded relay, nil when none
	keys   []key.NodePublic // the last revocationLogLen revocations, oldest first
	next   uint64           // sequence number of the next revocation
	wake   chan struct{}    // closed and replaced on each revocation and on close
	closed bool
}

func newRevocations() *revocations {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &revocations{epoch: hex.EncodeToString(b[:]), wake: make(chan struct{})}
}

// setRelay makes the embedded relay hear of revocations.
func (r *revocations) setRelay(s *derp.Server) {
	r.mu.Lock()
	r.relay = s
	r.mu.Unlock()
}

// revoke records k and disconnects it from the embedded relay. It never
// blocks (the engine calls it with its lock held).
func (r *revocations) revoke(k key.NodePublic) {
	r.mu.Lock()
	if len(r.keys) == revocationLogLen {
		r.keys = append(r.keys[:0], r.keys[1:]...)
	}
	r.keys = append(r.keys, k)
	r.next++
	close(r.wake)
	r.wake = make(chan struct{})
	relay := r.relay
	r.mu.Unlock()
	if relay != nil {
		relay.Disconnect(k)
	}
}

// close wakes every poll and makes later ones return at once.
func (r *revocations) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.wake)
	}
}

// revocationAnswer is the body of a RelayRevocationsPath answer. Reset
// means the relay may have missed revocations (a new coordinator run, or
// it fell more than the log behind): it must recheck every client.
type revocationAnswer struct {
	Epoch string   `json:"epoch"`
	Next  uint64   `json:"next"`
	Keys  []string `json:"keys"`
	Reset bool     `json:"reset,omitempty"`
}

// since returns what a relay that has seen revocations up to seq of epoch
// has missed; when it missed nothing, wake is closed by the next change.
func (r *revocations) since(epoch string, seq uint64, known bool) (ans revocationAnswer, wake <-chan struct{}, closed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ans = revocationAnswer{Epoch: r.epoch, Next: r.next, Keys: []string{}}
	oldest := r.next - uint64(len(r.keys))
	switch {
	case !known || epoch != r.epoch || seq > r.next || seq < oldest:
		ans.Reset = true
	default:
		for _, k := range r.keys[seq-oldest:] {
			ans.Keys = append(ans.Keys, k.String())
		}
	}
	return ans, r.wake, r.closed
}

// relayAuthorized checks a standalone relay's bearer token, answering 401
// itself when it is wrong.
func (c *Coordinator) relayAuthorized(w http.ResponseWriter, r *http.Request) bool {
	return checkBearer(w, r, c.cfg.Relay.AdmitToken)
}

// serveRelayRevocations answers GET ?epoch=E&since=N with the node keys
// revoked since N, waiting up to revocationPoll for one. A relay starts
// without epoch and since (and is told to recheck everything, which costs
// nothing when it has no clients), then passes the epoch and next of each
// answer to its next poll.
func (c *Coordinator) serveRelayRevocations(w http.ResponseWriter, r *http.Request) {
	if !c.relayAuthorized(w, r) {
		return
	}
	q := r.URL.Query()
	seq, err := strconv.ParseUint(q.Get("since"), 10, 64)
	known := err == nil && q.Get("epoch") != ""
	ctx, cancel := context.WithTimeout(r.Context(), revocationPoll)
	defer cancel()
	for {
		ans, wake, closed := c.revoked.since(q.Get("epoch"), seq, known)
		if ans.Reset || len(ans.Keys) > 0 || closed {
			writeRevocations(w, ans)
			return
		}
		select {
		case <-wake:
		case <-ctx.Done():
			writeRevocations(w, ans)
			return
		}
	}
}

func writeRevocations(w http.ResponseWriter, ans revocationAnswer) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(ans)
}
