package localapi

// NotVisible says why what (a quoted name, or "address A") is not in the
// node's netmap, in the words every command uses. The node cannot tell a
// node that does not exist from one the policy hides: the coordinator
// tells it only of the nodes it may reach or be reached from. So the
// message names both and never guesses.
func NotVisible(what string) string {
	return what + ": no such node, or not reachable under the current policy (this node knows only the nodes the policy lets it reach or be reached from; see warren status)"
}
