package connlimit

// Defaults for servers that take no explicit caps.
const (
	// DefaultPerSource allows an office of ~100 nodes behind one NAT
	// address (each holds a control channel and a relay connection).
	DefaultPerSource = 256
	// fallbackTotal is DefaultTotal when the descriptor limit is unknown.
	fallbackTotal = 4096
	// reserve is how many descriptors DefaultTotal leaves for the
	// database, log files, STUN and outgoing connections.
	reserve = 256
)

// DefaultTotal returns a total cap that keeps the process below its file
// descriptor limit: the limit minus a reserve of 256 (at least 64, at most
// 1<<20), or 4096 when the limit is unknown.
func DefaultTotal() int {
	return totalFor(descriptorLimit())
}

func totalFor(limit uint64) int {
	switch {
	case limit == 0:
		return fallbackTotal
	case limit > 1<<20:
		return 1 << 20
	case limit < reserve+64:
		return 64
	}
	return int(limit) - reserve
}
