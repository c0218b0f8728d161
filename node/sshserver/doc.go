// Package sshserver is the node's SSH server (warrend --ssh): it lets a
// peer log in to this host by mesh identity alone, as the policy's ssh
// rules (wire.SSHPolicy, in the netmap) allow.
//
// A connection is identified by its source address, which the mesh
// vouches for (WireGuard authenticated the peer that sent it): the peer
// with that address in the current netmap. The rule is chosen by Match;
// check rules ask the coordinator (Control.SSHCall) for a fresh sign-in
// first, showing the sign-in URL to the client as an authentication
// banner. Each session (login shell, command, PTY, env, exit status) runs
// as the mapped local user; local port forwarding only when the rule has
// PortForwarding. Sessions whose rule requires a recording are streamed
// as an asciinema cast to a recorder before anything runs. Every live
// session is re-evaluated on each netmap (SetNetmap) and cut when its peer
// left or its rule no longer admits it. Starts, ends and denials are
// reported to the coordinator.
//
// It must never: accept an SSH key, password or any credential other than
// the mesh identity; run anything for a connection before it is
// authorised; run a session as root (or as any user but its own) for a
// mapping to another user; let a session that requires a recording start
// before the recorder took it (unless its rule fails open); let remote
// forwarding, agent or X11 forwarding through; or outlive Close.
package sshserver
