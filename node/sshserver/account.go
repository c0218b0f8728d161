package sshserver

// account is a local user a session runs as.
type account struct {
	name        string
	uid, gid    uint32
	groups      []uint32
	home, shell string
}
