package policy

import "math/bits"

// bitset is a set of node slots.
type bitset []uint64

func (b bitset) has(i int32) bool {
	w := int(i >> 6)
	return w < len(b) && b[w]&(1<<(uint(i)&63)) != 0
}

func (b *bitset) set(i int32) {
	w := int(i >> 6)
	if w >= len(*b) {
		b.grow(w + 1)
	}
	(*b)[w] |= 1 << (uint(i) & 63)
}

func (b bitset) clear(i int32) {
	if w := int(i >> 6); w < len(b) {
		b[w] &^= 1 << (uint(i) & 63)
	}
}

// grow makes b n words long, keeping its members.
func (b *bitset) grow(n int) {
	if n <= cap(*b) {
		old := len(*b)
		*b = (*b)[:n]
		clear((*b)[old:])
		return
	}
	nb := make(bitset, n, max(n, 2*cap(*b)))
	copy(nb, *b)
	*b = nb
}

func (b *bitset) or(o bitset) {
	if len(o) > len(*b) {
		b.grow(len(o))
	}
	for i, w := range o {
		(*b)[i] |= w
	}
}

// each calls fn for every member in increasing order until fn returns
// false; it reports whether it went through all of them.
func (b bitset) each(fn func(int32) bool) bool {
	for i, w := range b {
		for w != 0 {
			t := bits.TrailingZeros64(w)
			if !fn(int32(i<<6 + t)) {
				return false
			}
			w &= w - 1
		}
	}
	return true
}

// key is the set's content as a string, for interning.
func (b bitset) key() string {
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	buf := make([]byte, 0, 8*n)
	for _, w := range b[:n] {
		buf = append(buf, byte(w), byte(w>>8), byte(w>>16), byte(w>>24), byte(w>>32), byte(w>>40), byte(w>>48), byte(w>>56))
	}
	return string(buf)
}

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// orAnd adds the members of both a and c to b.
func (b *bitset) orAnd(a, c bitset) {
	n := min(len(a), len(c))
	for n > 0 && a[n-1]&c[n-1] == 0 {
		n--
	}
	if n > len(*b) {
		b.grow(n)
	}
	for i := range n {
		(*b)[i] |= a[i] & c[i]
	}
}
