package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// posture is a named list of conditions on node attributes; all must hold.
type posture struct {
	name  string
	conds []cond
	off   int
}

type condOp uint8

const (
	opEq condOp = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opIn
	opNotIn
	opIsSet
	opNotSet
)

var opText = [...]string{"==", "!=", "<", "<=", ">", ">=", "IN", "NOT IN", "IS SET", "NOT SET"}

// cond is one condition such as "node:osVersion >= '15.0'".
type cond struct {
	attr string
	op   condOp
	vals []pval
	text string
}

// pval is a literal in a condition.
type pval struct {
	kind byte // 's' string, 'b' bool, 'n' number
	s    string
	b    bool
	n    float64
}

func (v pval) String() string {
	switch v.kind {
	case 'b':
		return strconv.FormatBool(v.b)
	case 'n':
		return v.s
	}
	return strconv.Quote(v.s)
}

// condLexer walks a condition string.
type condLexer struct {
	s string
	i int
}

func (l *condLexer) space() {
	for l.i < len(l.s) && (l.s[l.i] == ' ' || l.s[l.i] == '\t') {
		l.i++
	}
}

// word reads a run of characters allowed in attribute names and keywords.
func (l *condLexer) word() string {
	l.space()
	start := l.i
	for l.i < len(l.s) {
		c := l.s[l.i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '-' || c == '.' || c == '+' {
			l.i++
			continue
		}
		break
	}
	return l.s[start:l.i]
}

const condHint = `conditions look like "node:os == 'macos'", "node:osVersion >= '15.0'", "node:os IN ['macos', 'windows']" or "custom:managed IS SET"`

// parseCond parses one posture condition. On error it returns the offset
// of the problem in s and a hint.
func parseCond(s string) (cond, int, string, error) {
	l := &condLexer{s: s}
	c := cond{text: s}
	l.space()
	attrOff := l.i
	c.attr = l.word()
	ns, name, ok := strings.Cut(c.attr, ":")
	if !ok || !validName(ns) || strings.ContainsAny(ns, ".-_") || !validName(name) {
		return c, attrOff, "attributes are namespace:name, e.g. node:os or custom:managed", fmt.Errorf("invalid attribute %q", c.attr)
	}
	l.space()
	if l.i == len(s) {
		// A bare attribute means it is true, as in Tailscale.
		c.op, c.vals = opEq, []pval{{kind: 'b', b: true}}
		return c, 0, "", nil
	}
	opOff := l.i
	switch {
	case strings.HasPrefix(s[l.i:], "=="):
		c.op, l.i = opEq, l.i+2
	case strings.HasPrefix(s[l.i:], "!="):
		c.op, l.i = opNe, l.i+2
	case strings.HasPrefix(s[l.i:], "<="):
		c.op, l.i = opLe, l.i+2
	case strings.HasPrefix(s[l.i:], ">="):
		c.op, l.i = opGe, l.i+2
	case strings.HasPrefix(s[l.i:], "<"):
		c.op, l.i = opLt, l.i+1
	case strings.HasPrefix(s[l.i:], ">"):
		c.op, l.i = opGt, l.i+1
	default:
		w1 := strings.ToUpper(l.word())
		switch w1 {
		case "IN":
			c.op = opIn
		case "IS":
			if strings.ToUpper(l.word()) != "SET" {
				return c, opOff, condHint, fmt.Errorf("expected IS SET")
			}
			c.op = opIsSet
		case "NOT":
			save := l.i
			switch strings.ToUpper(l.word()) {
			case "IN":
				c.op = opNotIn
			case "SET":
				c.op = opNotSet
			default:
				return c, save, condHint, fmt.Errorf("expected NOT IN or NOT SET")
			}
		default:
			return c, opOff, condHint, fmt.Errorf("expected an operator (==, !=, <, <=, >, >=, IN, NOT IN, IS SET, NOT SET)")
		}
	}
	switch c.op {
	case opIsSet, opNotSet:
	case opIn, opNotIn:
		l.space()
		if l.i >= len(s) || s[l.i] != '[' {
			return c, l.i, condHint, fmt.Errorf("%s needs a list such as ['a', 'b']", opText[c.op])
		}
		l.i++
		for {
			l.space()
			if l.i < len(s) && s[l.i] == ']' && len(c.vals) == 0 {
				return c, l.i, condHint, fmt.Errorf("empty list")
			}
			v, off, err := l.value()
			if err != nil {
				return c, off, condHint, err
			}
			c.vals = append(c.vals, v)
			l.space()
			if l.i < len(s) && s[l.i] == ',' {
				l.i++
				continue
			}
			if l.i < len(s) && s[l.i] == ']' {
				l.i++
				break
			}
			return c, l.i, condHint, fmt.Errorf("expected ',' or ']'")
		}
	default:
		l.space()
		valOff := l.i
		v, off, err := l.value()
		if err != nil {
			return c, off, condHint, err
		}
		if v.kind == 'b' && c.op != opEq && c.op != opNe {
			return c, valOff, "booleans compare only with == and !=", fmt.Errorf("cannot order booleans")
		}
		c.vals = []pval{v}
	}
	l.space()
	if l.i != len(s) {
		return c, l.i, condHint, fmt.Errorf("unexpected %q", s[l.i:])
	}
	return c, 0, "", nil
}

// value reads a quoted string, boolean or number.
func (l *condLexer) value() (pval, int, error) {
	l.space()
	start := l.i
	if l.i >= len(l.s) {
		return pval{}, start, fmt.Errorf("missing value")
	}
	if q := l.s[l.i]; q == '\'' || q == '"' {
		end := strings.IndexByte(l.s[l.i+1:], q)
		if end < 0 {
			return pval{}, start, fmt.Errorf("unterminated string")
		}
		v := pval{kind: 's', s: l.s[l.i+1 : l.i+1+end]}
		l.i += end + 2
		return v, 0, nil
	}
	w := l.word()
	switch strings.ToLower(w) {
	case "true":
		return pval{kind: 'b', b: true}, 0, nil
	case "false":
		return pval{kind: 'b', b: false}, 0, nil
	}
	if n, err := strconv.ParseFloat(w, 64); err == nil && isDecimal(w) {
		return pval{kind: 'n', s: w, n: n}, 0, nil
	}
	return pval{}, start, fmt.Errorf("values are 'quoted strings', numbers, true or false")
}

// eval checks the condition against attrs. When it fails it says why.
func (c *cond) eval(attrs map[string]string) (bool, string) {
	a, present := attrs[c.attr]
	switch c.op {
	case opIsSet:
		if present {
			return true, ""
		}
		return false, c.attr + " is not set"
	case opNotSet:
		if !present {
			return true, ""
		}
		return false, fmt.Sprintf("%s is set (%q)", c.attr, a)
	}
	if !present {
		return false, c.attr + absentText(c.attr)
	}
	ok := false
	switch c.op {
	case opEq:
		eq, _ := equalVal(a, c.vals[0])
		ok = eq
	case opNe:
		eq, comparable := equalVal(a, c.vals[0])
		ok = comparable && !eq
	case opIn:
		for _, v := range c.vals {
			if eq, _ := equalVal(a, v); eq {
				ok = true
				break
			}
		}
	case opNotIn:
		ok = true
		for _, v := range c.vals {
			if eq, comparable := equalVal(a, v); eq || !comparable {
				ok = false
				break
			}
		}
	default:
		cmp := compareVal(a, c.vals[0])
		switch c.op {
		case opLt:
			ok = cmp < 0
		case opLe:
			ok = cmp <= 0
		case opGt:
			ok = cmp > 0
		case opGe:
			ok = cmp >= 0
		}
	}
	if ok {
		return true, ""
	}
	var want string
	switch c.op {
	case opIn, opNotIn:
		vs := make([]string, len(c.vals))
		for i, v := range c.vals {
			vs[i] = v.String()
		}
		want = opText[c.op] + " [" + strings.Join(vs, ", ") + "]"
	default:
		want = opText[c.op] + " " + c.vals[0].String()
	}
	return false, fmt.Sprintf("%s is %s (needs %s)", c.attr, seenText(a, c.vals[0].kind), want)
}

// absentText ends the sentence about a missing attribute: nodes report
// node: attributes; admins and integrations set the others.
func absentText(attr string) string {
	if strings.HasPrefix(attr, "node:") {
		return " is not reported"
	}
	return " is not set"
}

// seenText shows an attribute's value the way the condition's literal is
// written: bare when it reads as that kind (false, 14), else quoted.
func seenText(a string, kind byte) string {
	switch kind {
	case 'b':
		if _, err := strconv.ParseBool(a); err == nil && a == strings.ToLower(a) {
			return a
		}
	case 'n':
		if _, err := strconv.ParseFloat(a, 64); err == nil && isDecimal(a) {
			return a
		}
	}
	return strconv.Quote(a)
}

// equalVal compares an attribute with a literal of the literal's type. It
// reports whether the attribute could be read as that type at all.
func equalVal(a string, v pval) (equal, comparable bool) {
	switch v.kind {
	case 'b':
		b, err := strconv.ParseBool(a)
		return err == nil && b == v.b, err == nil
	case 'n':
		n, err := strconv.ParseFloat(a, 64)
		if err != nil {
			return compareVersions(a, v.s) == 0, true
		}
		return n == v.n, true
	}
	return a == v.s, true
}

// compareVal orders an attribute against a literal: numerically when both
// are numbers, else as versions.
func compareVal(a string, v pval) int {
	if v.kind == 'n' {
		if n, err := strconv.ParseFloat(a, 64); err == nil {
			switch {
			case n < v.n:
				return -1
			case n > v.n:
				return 1
			}
			return 0
		}
	}
	return compareVersions(a, v.s)
}

// compareVersions orders version strings piece by piece: runs of digits
// compare as numbers (so 15.10 > 15.9), other runs as lowercase text;
// separators (. - + _ and space) only split. A missing numeric piece
// counts as 0 (15 == 15.0); a missing piece ranks above a text piece, so
// 1.2 > 1.2-beta.
func compareVersions(a, b string) int {
	pa, pb := versionPieces(a), versionPieces(b)
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y string
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		xd, yd := isDigits(x), isDigits(y)
		switch {
		case x == "" && yd:
			x, xd = "0", true
		case y == "" && xd:
			y, yd = "0", true
		case x == "":
			return 1
		case y == "":
			return -1
		}
		var c int
		switch {
		case xd && yd:
			c = compareDigits(x, y)
		case xd:
			c = 1
		case yd:
			c = -1
		default:
			c = strings.Compare(strings.ToLower(x), strings.ToLower(y))
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

func versionPieces(s string) []string {
	var out []string
	start := -1
	digit := false
	for i := 0; i <= len(s); i++ {
		if i == len(s) || strings.IndexByte(".-+_ ", s[i]) >= 0 {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
			continue
		}
		d := s[i] >= '0' && s[i] <= '9'
		if start >= 0 && d != digit {
			out = append(out, s[start:i])
			start = -1
		}
		if start < 0 {
			start, digit = i, d
		}
	}
	return out
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func compareDigits(x, y string) int {
	x = strings.TrimLeft(x, "0")
	y = strings.TrimLeft(y, "0")
	if len(x) != len(y) {
		if len(x) < len(y) {
			return -1
		}
		return 1
	}
	return strings.Compare(x, y)
}

// check evaluates the posture, returning the first failing condition.
func (po *posture) check(attrs map[string]string) (bool, string) {
	for i := range po.conds {
		if ok, why := po.conds[i].eval(attrs); !ok {
			return false, why
		}
	}
	return true, ""
}

// isDecimal reports whether s is a plain decimal number such as 15, -2.5
// or 1e3 (not hex, inf or nan, which ParseFloat also accepts).
func isDecimal(s string) bool {
	digits := false
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits = true
		case c == '.', c == '-', c == '+', c == 'e', c == 'E':
		default:
			return false
		}
	}
	return digits
}
