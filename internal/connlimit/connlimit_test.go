package connlimit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

const wait = 10 * time.Second

// serve accepts on l until it is closed, handing each connection to conns.
func serve(t *testing.T, l *Listener) <-chan net.Conn {
	t.Helper()
	conns := make(chan net.Conn, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return conns
}

func listen(t *testing.T, cfg Config) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return New(ln, cfg)
}

// dialFrom connects from the loopback source address src.
func dialFrom(t *testing.T, l net.Listener, src string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: wait, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closed c (it reads EOF).
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || isReset(err)
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// accepted waits for the server side of the next admitted connection.
func accepted(t *testing.T, conns <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-conns:
		return c
	case <-time.After(wait):
		t.Fatal("no connection accepted")
		return nil
	}
}

func TestCaps(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		sources   []string // one connection from each, in order
		refused   []bool   // whether each is refused
		perSource uint64
		total     uint64
	}{
		{"per source", Config{PerSource: 2},
			[]string{"127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3"}, []bool{false, false, true, false}, 1, 0},
		{"total", Config{Total: 3},
			[]string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}, []bool{false, false, false, true}, 0, 1},
		{"both", Config{PerSource: 1, Total: 2},
			[]string{"127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.4"}, []bool{false, true, false, true}, 1, 1},
		{"off", Config{},
			[]string{"127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.2"}, []bool{false, false, false, false}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var refusedFrom []netip.Addr
			tt.cfg.OnRefuse = func(a netip.Addr, _ string) {
				mu.Lock()
				refusedFrom = append(refusedFrom, a)
				mu.Unlock()
			}
			l := listen(t, tt.cfg)
			conns := serve(t, l)
			wantOpen := 0
			for i, src := range tt.sources {
				c := dialFrom(t, l, src)
				if tt.refused[i] {
					if !closedByServer(t, c) {
						t.Fatalf("connection %d from %s: not refused", i, src)
					}
					continue
				}
				accepted(t, conns)
				wantOpen++
			}
			st := l.Stats()
			if st.Open != wantOpen || st.RefusedPerSource != tt.perSource || st.RefusedTotal != tt.total {
				t.Fatalf("stats %+v, want %d open, %d+%d refused", st, wantOpen, tt.perSource, tt.total)
			}
			mu.Lock()
			defer mu.Unlock()
			if uint64(len(refusedFrom)) != tt.perSource+tt.total {
				t.Fatalf("OnRefuse called %d times", len(refusedFrom))
			}
		})
	}
}

// A closed connection frees its slot, once however often it is closed.
func TestCloseReleasesOnce(t *testing.T) {
	l := listen(t, Config{PerSource: 1})
	conns := serve(t, l)
	dialFrom(t, l, "127.0.0.2")
	srv := accepted(t, conns)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	_ = srv.Close()
	if st := l.Stats(); st.Open != 0 || st.SourcesWithConns != 0 {
		t.Fatalf("after close: %+v", st)
	}
	// The source may connect again, and only once.
	dialFrom(t, l, "127.0.0.2")
	accepted(t, conns)
	if c := dialFrom(t, l, "127.0.0.2"); !closedByServer(t, c) {
		t.Fatal("second connection not refused")
	}
	if st := l.Stats(); st.Open != 1 || st.MaxOpenFromSource != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSourceOf(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 2}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 3}, "2001:db8::1"},
		{&net.UnixAddr{Name: "/x", Net: "unix"}, "invalid IP"},
		{nil, "invalid IP"},
	}
	for _, tt := range tests {
		if got := sourceOf(tt.addr).String(); got != tt.want {
			t.Errorf("sourceOf(%v) = %s, want %s", tt.addr, got, tt.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		limit uint64
		want  int
	}{{0, 4096}, {1024, 768}, {100, 64}, {1 << 40, 1 << 20}}
	for _, tt := range tests {
		if got := totalFor(tt.limit); got != tt.want {
			t.Errorf("totalFor(%d) = %d, want %d", tt.limit, got, tt.want)
		}
	}
	if DefaultTotal() <= 0 {
		t.Fatal("DefaultTotal not positive")
	}
	if err := (Config{PerSource: 5, Total: 4}).Validate(); err == nil {
		t.Fatal("contradictory caps accepted")
	}
}
