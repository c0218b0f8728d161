package sshserver

import (
	"path"
	"slices"
	"strings"

	"github.com/warrenmesh/warren/internal/wire"
)

// Match returns the rule of pol that lets peer log in as localUser, or
// nil: the first matching check rule if any (check is stricter, so it
// wins), else the first matching accept rule. A rule matches when peer is
// one of its Sources and localUser one of its Users: listed by name (an
// entry without ':'), or the rule has "autogroup:nonroot" and localUser is
// not root, or "localpart:*@DOMAIN" and peer is an untagged node whose
// owner's login is localUser@DOMAIN (DOMAIN case-insensitive). Match does
// not look at whether localUser exists on this host; the caller does. A
// rule with an unknown action matches nothing.
func Match(pol *wire.SSHPolicy, peer wire.Node, localUser string) *wire.SSHRule {
	if pol == nil || localUser == "" {
		return nil
	}
	var accept *wire.SSHRule
	for i := range pol.Rules {
		r := &pol.Rules[i]
		if r.Action != wire.SSHCheck && r.Action != wire.SSHAccept {
			continue
		}
		if !slices.Contains(r.Sources, peer.ID) || !usersMatch(r.Users, peer, localUser) {
			continue
		}
		if r.Action == wire.SSHCheck {
			return r
		}
		if accept == nil {
			accept = r
		}
	}
	return accept
}

// usersMatch reports whether localUser is one of users for peer.
func usersMatch(users []string, peer wire.Node, localUser string) bool {
	for _, u := range users {
		switch {
		case !strings.Contains(u, ":"):
			if u == localUser {
				return true
			}
		case u == "autogroup:nonroot":
			if localUser != "root" {
				return true
			}
		case strings.HasPrefix(u, "localpart:*@"):
			domain := strings.TrimPrefix(u, "localpart:*@")
			if len(peer.Tags) > 0 || peer.User == "" || domain == "" {
				continue
			}
			if rest, ok := strings.CutPrefix(peer.User, localUser+"@"); ok && strings.EqualFold(rest, domain) {
				return true
			}
		}
	}
	return false
}

// envAllowed reports whether the client may set the environment variable
// name: it matches one of patterns ("*" and "?" wildcards, as the
// policy's acceptEnv writes them). Names are never more than a portable
// identifier.
func envAllowed(patterns []string, name string) bool {
	if !validEnvName(name) {
		return false
	}
	for _, p := range patterns {
		if strings.ContainsAny(p, "[\\") { // only * and ? are wildcards
			if p == name {
				return true
			}
			continue
		}
		if ok, err := path.Match(p, name); err == nil && ok {
			return true
		}
	}
	return false
}

// validEnvName reports whether name is a letter or underscore followed by
// letters, digits and underscores.
func validEnvName(name string) bool {
	if name == "" || len(name) > 256 {
		return false
	}
	for i, c := range name {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
