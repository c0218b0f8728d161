// Package state keeps a node's identity and settings in one file readable
// only by its owner (0600): the machine, node and disco private keys, the
// coordinator it joined and how. Private keys live here and in memory,
// nowhere else.
//
// Writes are atomic (temporary file, fsync, rename), so a crash leaves the
// old or the new state, never a torn one.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/warrenmesh/warren/internal/atomicfile"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/routes"
)

// FileName is the state file's name inside the state directory.
const FileName = "warrend.state"

// version is the current file format.
const version = 1

// maxSize bounds what Load reads; a real state file is under 1 KiB.
const maxSize = 1 << 20

// State is what a node remembers across restarts.
type State struct {
	Version    int                `json:"version"`
	MachineKey key.MachinePrivate `json:"machineKey"`
	NodeKey    key.NodePrivate    `json:"nodeKey"`
	DiscoKey   key.DiscoPrivate   `json:"discoKey"`

	// Coordinator is the URL joined with `warren up`; empty when logged out.
	Coordinator string `json:"coordinator,omitempty"`
	// ControlKey is the coordinator's pinned public key.
	ControlKey key.ControlPublic `json:"controlKey,omitzero"`
	Hostname   string            `json:"hostname,omitempty"`
	Tags       []string          `json:"tags,omitempty"`
	// AuthKey is the pre-auth key the node registered with, kept so a
	// restart before the first successful registration can finish it. It
	// is cleared once the node is registered.
	AuthKey string `json:"authKey,omitempty"`
	// WantRunning is false after `warren down`: the daemon starts idle.
	WantRunning bool `json:"wantRunning"`
	// ListenPort is the WireGuard UDP port, kept so peers' copies of this
	// node's endpoints stay right across restarts.
	ListenPort uint16 `json:"listenPort,omitempty"`
	// AdvertiseRoutes are the subnet routes the node offers (warren up
	// --advertise-routes), and AdvertiseExitNode whether it offers to be
	// an exit node (--advertise-exit-node).
	AdvertiseRoutes   []netip.Prefix `json:"advertiseRoutes,omitempty"`
	AdvertiseExitNode bool           `json:"advertiseExitNode,omitempty"`
	// ExitNode is the peer (its name or a mesh address) this node sends
	// its non-mesh traffic through (warren up --exit-node; "" for none),
	// and ExitNodeAllowLAN whether the node's own LAN stays reached
	// directly meanwhile (--exit-node-allow-lan-access).
	ExitNode         string `json:"exitNode,omitempty"`
	ExitNodeAllowLAN bool   `json:"exitNodeAllowLAN,omitempty"`
}

// Advertised is every route the node advertises: its subnet routes, and
// 0.0.0.0/0 and ::/0 when it offers to be an exit node.
func (s *State) Advertised() []netip.Prefix {
	out := slices.Clone(s.AdvertiseRoutes)
	if s.AdvertiseExitNode {
		out = append(out, routes.ExitV4, routes.ExitV6)
	}
	routes.Sort(out)
	return out
}

// New returns a state with fresh keys.
func New() State {
	return State{Version: version, MachineKey: key.NewMachine(), NodeKey: key.NewNode(), DiscoKey: key.NewDisco()}
}

// Load reads the state file in dir, creating dir (0700) and a fresh state
// with new keys if there is none. It refuses a file others can read: its
// keys would no longer be private.
func Load(dir string) (State, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return State{}, fmt.Errorf("state: create %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		s := New()
		if err := Save(dir, s); err != nil {
			return State{}, err
		}
		return s, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("state: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return State{}, fmt.Errorf("state: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return State{}, fmt.Errorf("state: %s is accessible to other users (mode %04o); its private keys may be exposed: run chmod 600 on it, or delete it to start with new keys", path, fi.Mode().Perm())
	}
	if fi.Size() > maxSize {
		return State{}, fmt.Errorf("state: %s is %d bytes, larger than any state file (corrupt?)", path, fi.Size())
	}
	var s State
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return State{}, fmt.Errorf("state: %s is not a valid state file: %w", path, err)
	}
	if err := s.validate(); err != nil {
		return State{}, fmt.Errorf("state: %s: %w", path, err)
	}
	return s, nil
}

// Parse decodes a state file's bytes (for tests and fuzzing of the format).
func Parse(b []byte) (State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("state: %w", err)
	}
	if err := s.validate(); err != nil {
		return State{}, fmt.Errorf("state: %w", err)
	}
	return s, nil
}

func (s State) validate() error {
	switch {
	case s.Version != version:
		return fmt.Errorf("format version %d is not %d (written by another warrend version?)", s.Version, version)
	case s.MachineKey.IsZero() || s.NodeKey.IsZero() || s.DiscoKey.IsZero():
		return errors.New("a private key is missing")
	case s.Coordinator != "" && s.ControlKey.IsZero():
		return errors.New("coordinator set without its key")
	}
	return nil
}

// Save writes s to the state file in dir atomically, readable only by its
// owner.
func Save(dir string, s State) error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("state: refusing to save: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, FileName), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("state: write: %w", err)
	}
	return nil
}
