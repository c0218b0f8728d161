package policy

// emptySource is a policy with no rules: nothing may reach anything.
const emptySource = "{}"

// Empty returns the policy that allows nothing, for a coordinator that has
// not loaded a file yet.
func Empty() *Policy {
	p, err := Parse([]byte(emptySource))
	if err != nil {
		panic("policy: the empty policy does not parse: " + err.Error())
	}
	return p
}

// RuleCount returns the number of acls rules.
func (p *Policy) RuleCount() int { return len(p.rules) }

// TestCount returns the number of entries in the tests section (all of
// which passed, or Parse would have failed).
func (p *Policy) TestCount() int { return len(p.tests) }
