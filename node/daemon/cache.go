package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/warrenmesh/warren/internal/atomicfile"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/node/controlclient"
)

// netmapCacheFile holds the last netmap, so a node restarted while the
// coordinator is unreachable comes back with its tunnels.
const netmapCacheFile = "netmap.json"

// maxCache bounds what loadNetmap reads (a 10,000-peer map is ~5 MB).
const maxCache = 64 << 20

// cachedNetmap is the cache file's content: the netmap and whom it is for.
type cachedNetmap struct {
	Coordinator string                `json:"coordinator"`
	NodeKey     key.NodePublic        `json:"nodeKey"`
	Netmap      *controlclient.Netmap `json:"netmap"`
}

// saveNetmap writes the cache atomically (0600: peers' addresses and
// endpoints are not secret, but nobody else needs them).
func saveNetmap(dir string, c cachedNetmap) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, netmapCacheFile), b, 0o600)
}

// loadNetmap returns the cached netmap if it was saved for this
// coordinator and node key; nil (and no error) when there is none.
func loadNetmap(dir, coordinator string, nodeKey key.NodePublic) (*controlclient.Netmap, error) {
	path := filepath.Join(dir, netmapCacheFile)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxCache {
		return nil, fmt.Errorf("%s is %d bytes: ignoring it", path, fi.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c cachedNetmap
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.Coordinator != coordinator || c.NodeKey != nodeKey || c.Netmap == nil || len(c.Netmap.Self.Addresses) == 0 {
		return nil, nil // for another identity: stale
	}
	return c.Netmap, nil
}
