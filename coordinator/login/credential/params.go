package credential

// Params are the cost parameters of new argon2id password hashes.
// CheckPassword reads a stored hash's own parameters, so hashes made with
// any Params verify.
type Params struct {
	MemoryKiB uint32
	Passes    uint32
	Lanes     uint8
}

// Production are the parameters HashPassword uses: the second recommended
// option of RFC 9106 section 4 (64 MiB, 3 passes, 4 lanes).
var Production = Params{MemoryKiB: defaultParams.memory, Passes: defaultParams.time, Lanes: defaultParams.threads}

// Hash returns the argon2id hash of password with p, as HashPassword does
// with Production. Lower parameters are for tests only.
func (p Params) Hash(password string) (string, error) {
	if err := checkPasswordLen(password); err != nil {
		return "", err
	}
	a := defaultParams
	a.memory, a.time, a.threads = p.MemoryKiB, p.Passes, p.Lanes
	return hashWith(password, a)
}

// IsZero reports whether p is unset.
func (p Params) IsZero() bool { return p == Params{} }
