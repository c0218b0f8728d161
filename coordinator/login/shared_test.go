package login

import "testing"

func TestSharedOneOutcome(t *testing.T) {
	s := NewShared()
	var ended [3]int
	a := s.Join(func() { ended[0]++ })
	b := s.Join(func() { ended[1]++ })
	c := s.Join(nil)
	if s.Settled() {
		t.Fatal("settled before anyone settled")
	}
	first, again := s.Settle(b), s.Settle(b)
	if !first || !again {
		t.Fatal("the first member to settle does not have the outcome (asked twice)")
	}
	if s.Settle(a) || s.Settle(c) {
		t.Fatal("a second member settled too")
	}
	if ended != [3]int{1, 0, 0} {
		t.Fatalf("ends called %v, want only the other member's, once", ended)
	}
	late := 0
	s.Join(func() { late++ })
	if late != 1 {
		t.Fatal("a member joining a settled login was not ended")
	}
	var none *Shared
	if !none.Settle(1) || none.Settled() {
		t.Fatal("a nil Shared must let its one method settle")
	}
}
