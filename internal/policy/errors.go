package policy

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// Error is one problem in a policy file, at a position an editor can jump
// to. Line and Col are 1-based; Col counts characters, not bytes.
type Error struct {
	Line    int
	Col     int
	Message string
	Hint    string
}

// Error formats e as "LINE:COL: message (hint: ...)".
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d:%d: %s", e.Line, e.Col, e.Message)
	if e.Hint != "" {
		fmt.Fprintf(&b, " (hint: %s)", e.Hint)
	}
	return b.String()
}

// Errors is every error Parse found, in file order. It is the error type
// Parse returns; errors.As finds the individual *Error values in it.
type Errors []*Error

// Error lists the errors, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// maxErrors caps how many errors one Parse reports; a hostile or badly
// broken file should not produce megabytes of diagnostics.
const maxErrors = 100

// diag collects errors and warnings with positions computed from byte
// offsets into the source.
type diag struct {
	src        []byte
	lineStarts []int // byte offset of the start of each line
	errs       []*Error
	dropped    int
	warns      []*Error
}

func newDiag(src []byte) *diag {
	starts := []int{0}
	for i, c := range src {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return &diag{src: src, lineStarts: starts}
}

// position converts a byte offset into a 1-based line and character column.
func (d *diag) position(off int) (line, col int) {
	if off < 0 {
		off = 0
	}
	if off > len(d.src) {
		off = len(d.src)
	}
	i := sort.Search(len(d.lineStarts), func(i int) bool { return d.lineStarts[i] > off }) - 1
	if i < 0 {
		i = 0
	}
	return i + 1, utf8.RuneCount(d.src[d.lineStarts[i]:off]) + 1
}

// offsetOf converts a 1-based line and byte column back into an offset.
func (d *diag) offsetOf(line, byteCol int) int {
	if line < 1 {
		return 0
	}
	if line > len(d.lineStarts) {
		return len(d.src)
	}
	off := d.lineStarts[line-1] + byteCol - 1
	if off > len(d.src) {
		off = len(d.src)
	}
	if off < 0 {
		off = 0
	}
	return off
}

func (d *diag) newError(off int, hint, format string, args ...any) *Error {
	line, col := d.position(off)
	return &Error{Line: line, Col: col, Message: fmt.Sprintf(format, args...), Hint: hint}
}

// errorf records an error at byte offset off.
func (d *diag) errorf(off int, hint, format string, args ...any) {
	if len(d.errs) >= maxErrors {
		d.dropped++
		return
	}
	d.errs = append(d.errs, d.newError(off, hint, format, args...))
}

// warnf records a warning at byte offset off.
func (d *diag) warnf(off int, hint, format string, args ...any) {
	if len(d.warns) >= maxErrors {
		return
	}
	d.warns = append(d.warns, d.newError(off, hint, format, args...))
}

// err returns the collected errors as one error, or nil.
func (d *diag) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	es := append(Errors(nil), d.errs...)
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Col < es[j].Col
	})
	if d.dropped > 0 {
		last := es[len(es)-1]
		es = append(es, &Error{Line: last.Line, Col: last.Col,
			Message: fmt.Sprintf("%d more errors not shown", d.dropped),
			Hint:    "fix the errors above first"})
	}
	return es
}

// suggest returns a "did you mean" hint naming the candidate closest to
// name, or fallback when none is close enough.
func suggest(name string, candidates []string, fallback string) string {
	if best := closest(name, candidates); best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return fallback
}

// closest returns the candidate with the smallest edit distance to name
// when that distance is small relative to the name's length.
func closest(name string, candidates []string) string {
	const maxLen, maxCandidates = 64, 1000
	if len(name) > maxLen || len(candidates) > maxCandidates {
		return ""
	}
	limit := max(1, utf8.RuneCountInString(name)/3)
	best, bestD := "", limit+1
	for _, c := range candidates {
		if len(c) > maxLen || c == name {
			continue
		}
		if strings.EqualFold(c, name) {
			return c
		}
		if dl := len(c) - len(name); dl > limit || -dl > limit {
			continue
		}
		if d := editDistance(name, c, bestD); d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	if bestD > limit {
		return ""
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b
// (insertions, deletions, substitutions and swaps of two adjacent
// characters each cost one: "wbe" is one edit from "web"), or limit+1
// when it exceeds limit.
func editDistance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	pprev := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], pprev[j-2]+1)
			}
			rowMin = min(rowMin, cur[j])
		}
		if rowMin > limit {
			// A swap costs no less than the substitution it replaces, so
			// no later row goes below this one's minimum.
			return limit + 1
		}
		pprev, prev, cur = prev, cur, pprev
	}
	return prev[len(rb)]
}

// sortedKeys returns the keys of m in order, for suggestions and messages.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
