package derp

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestFIFOMatchesSlice runs random pushes, head-drop pushes and pops on a
// fifo and on a plain slice and compares them after every step; an
// emptied fifo must have let go of any buffer larger than fifoKeepCap.
func TestFIFOMatchesSlice(t *testing.T) {
	for _, limit := range []int{1, 3, fifoKeepCap, 16, 256} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(limit)))
			var q fifo
			var ref [][]byte
			for i := range 20 * limit {
				frame := []byte(fmt.Sprint(i))
				switch op := rng.IntN(3); {
				case op == 0:
					ok := q.push(frame, limit)
					if want := len(ref) < limit; ok != want {
						t.Fatalf("step %d: push = %v, want %v", i, ok, want)
					}
					if ok {
						ref = append(ref, frame)
					}
				case op == 1:
					dropped := q.pushDropOldest(frame, limit)
					if want := len(ref) == limit; dropped != want {
						t.Fatalf("step %d: pushDropOldest dropped %v, want %v", i, dropped, want)
					}
					if dropped {
						ref = ref[1:]
					}
					ref = append(ref, frame)
				default:
					b, ok := q.pop()
					if ok != (len(ref) > 0) || (ok && string(b) != string(ref[0])) {
						t.Fatalf("step %d: pop = %q, %v; want %q", i, b, ok, ref[:min(1, len(ref))])
					}
					if ok {
						ref = ref[1:]
					}
				}
				if q.len() != len(ref) || len(q.buf) > limit {
					t.Fatalf("step %d: len %d, buffer %d; want len %d, buffer ≤ %d", i, q.len(), len(q.buf), len(ref), limit)
				}
				if q.len() == 0 && len(q.buf) > fifoKeepCap {
					t.Fatalf("step %d: empty queue keeps a buffer of %d", i, len(q.buf))
				}
			}
			var got [][]byte
			for b, ok := q.pop(); ok; b, ok = q.pop() {
				got = append(got, b)
			}
			if !slices.EqualFunc(got, ref, func(a, b []byte) bool { return string(a) == string(b) }) {
				t.Fatalf("drained %q, want %q", got, ref)
			}
		})
	}
}
