package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
)

func TestAddressWrapAndReserved(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		below := newNode("below", 1)
		below.IPv4 = netip.MustParseAddr("100.100.100.99")
		_, err := s.CreateNode(ctx, below)
		must(t, err)
		n, err := s.CreateNode(ctx, newNode("next", 1))
		must(t, err)
		if n.IPv4 != netip.MustParseAddr("100.100.100.101") {
			t.Fatalf("after .99 got %v, want the DNS address skipped", n.IPv4)
		}
		top := newNode("top", 1)
		top.IPv4 = netip.MustParseAddr("100.127.255.255")
		_, err = s.CreateNode(ctx, top)
		must(t, err)
		wrapped, err := s.CreateNode(ctx, newNode("wrapped", 1))
		must(t, err)
		if wrapped.IPv4 != netip.MustParseAddr("100.64.0.1") {
			t.Fatalf("wrapped to %v, want the lowest gap", wrapped.IPv4)
		}
		outside := newNode("outside", 1)
		outside.IPv4 = netip.MustParseAddr("10.0.0.1")
		if _, err := s.CreateNode(ctx, outside); err == nil {
			t.Fatal("address outside the range accepted")
		}
	})
}

func TestConcurrentCreateNode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		const workers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if _, err := s.CreateNode(ctx, newNode(fmt.Sprintf("host-%d-%d", w, i%3), 1)); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		nodes, err := s.ListNodes(ctx)
		must(t, err)
		seen := map[netip.Addr]bool{}
		names := map[string]bool{}
		for _, n := range nodes {
			if seen[n.IPv4] || seen[n.IPv6] || names[n.Name] {
				t.Fatalf("duplicate address or name: %+v", n)
			}
			if n.IPv6 != IPv6For(n.IPv4) {
				t.Fatalf("IPv6 %v not paired with %v", n.IPv6, n.IPv4)
			}
			seen[n.IPv4], seen[n.IPv6], names[n.Name] = true, true, true
		}
		if len(nodes) != workers*each {
			t.Fatalf("%d nodes, want %d", len(nodes), workers*each)
		}
	})
}

// withV4Bounds shrinks the allocator's range to [first, last] for one test.
func withV4Bounds(t *testing.T, first, last string) {
	t.Helper()
	oldFirst, oldLast := v4First, v4Last
	v4First, v4Last = v4num(netip.MustParseAddr(first)), v4num(netip.MustParseAddr(last))
	t.Cleanup(func() { v4First, v4Last = oldFirst, oldLast })
}

func TestAllocationSequence(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		for i, want := range []string{"100.64.0.1", "100.64.0.2", "100.64.0.3"} {
			n, err := s.CreateNode(ctx, newNode(fmt.Sprint("n", i), 1))
			must(t, err)
			if n.IPv4 != netip.MustParseAddr(want) || n.IPv6 != IPv6For(n.IPv4) {
				t.Fatalf("node %d: %v %v, want %s and its IPv6 pair", i, n.IPv4, n.IPv6, want)
			}
		}
		// A caller-chosen IPv4 is kept and gets its paired IPv6; allocation
		// goes on above it.
		chosen := newNode("chosen", 1)
		chosen.IPv4 = netip.MustParseAddr("100.64.1.7")
		got, err := s.CreateNode(ctx, chosen)
		must(t, err)
		if got.IPv4 != chosen.IPv4 || got.IPv6 != netip.MustParseAddr("fd7a:115c:a1e0::6440:107") {
			t.Fatalf("chosen address: %v %v", got.IPv4, got.IPv6)
		}
		next, err := s.CreateNode(ctx, newNode("next", 1))
		must(t, err)
		if next.IPv4 != netip.MustParseAddr("100.64.1.8") {
			t.Fatalf("after a chosen address: %v", next.IPv4)
		}
	})
}

func TestAddressSpaceFull(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		withV4Bounds(t, "100.100.100.98", "100.100.100.102")
		s, _ := bk.openTest(t)
		ctx := context.Background()
		var nodes []Node
		for i := range 4 {
			n, err := s.CreateNode(ctx, newNode(fmt.Sprint("n", i), 1))
			must(t, err)
			nodes = append(nodes, n)
		}
		for i, want := range []string{"100.100.100.98", "100.100.100.99", "100.100.100.101", "100.100.100.102"} {
			if nodes[i].IPv4 != netip.MustParseAddr(want) {
				t.Fatalf("node %d got %v, want %s", i, nodes[i].IPv4, want)
			}
		}
		if _, err := s.CreateNode(ctx, newNode("one too many", 1)); !errors.Is(err, ErrAddressSpaceFull) {
			t.Fatalf("full range: %v", err)
		}
		// Freed addresses are reused lowest first once the top is reached.
		must(t, s.DeleteNode(ctx, nodes[2].ID))
		must(t, s.DeleteNode(ctx, nodes[1].ID))
		for _, want := range []string{"100.100.100.99", "100.100.100.101"} {
			n, err := s.CreateNode(ctx, newNode("reuse", 1))
			must(t, err)
			if n.IPv4 != netip.MustParseAddr(want) {
				t.Fatalf("reused %v, want %s", n.IPv4, want)
			}
		}
		if _, err := s.CreateNode(ctx, newNode("one too many", 1)); !errors.Is(err, ErrAddressSpaceFull) {
			t.Fatalf("full range again: %v", err)
		}
	})
}
