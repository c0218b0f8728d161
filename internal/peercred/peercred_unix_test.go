//go:build linux || darwin

package peercred

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

func TestOfReportsThisProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan context.Context, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- context.Background()
			return
		}
		defer c.Close()
		got <- ConnContext(context.Background(), c)
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cred, ok := FromContext(<-got)
	if !ok {
		t.Fatal("no credentials recorded for a unix socket")
	}
	if cred.User != strconv.Itoa(os.Getuid()) || int(cred.PID) != os.Getpid() {
		t.Fatalf("cred = %+v, want uid %d pid %d", cred, os.Getuid(), os.Getpid())
	}
	groups, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range append(groups, os.Getgid()) {
		if !slices.Contains(cred.Groups, strconv.Itoa(g)) {
			t.Errorf("cred.Groups = %q lacks this process's group %d", cred.Groups, g)
		}
	}
	if self, err := Self(); err != nil || self != cred.User {
		t.Errorf("Self() = %q, %v; the peer (this process) is %q", self, err, cred.User)
	}
}

func TestOfRefusesTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := Of(c); ok {
		t.Fatal("TCP connection reported unix credentials")
	}
	if _, ok := FromContext(ConnContext(context.Background(), c)); ok {
		t.Fatal("TCP connection got credentials in its context")
	}
}
