package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// nc copies stdin to a peer's TCP port and the port's answers to stdout,
// through warrend's local API dial: the stream goes through the mesh even
// when the node runs in userspace mode and the host has no route to mesh
// addresses. It is made for ssh's ProxyCommand:
//
//	ssh -o ProxyCommand='warren nc %h %p' alice@server
//
// End of stdin half-closes the stream (the peer sees EOF and may still
// answer); the command ends when the peer closes its side. It fails (exit
// 1) when it cannot connect or the stream breaks.
func (c *command) nc(args []string) error {
	c.flags()
	pos, err := c.parse(args, 2, "nc HOST PORT")
	if err != nil {
		return err
	}
	port, err := strconv.ParseUint(pos[1], 10, 16)
	if err != nil || port == 0 {
		return fmt.Errorf("PORT %q is not a port", pos[1])
	}
	cl := c.client()
	defer cl.Close()
	target := net.JoinHostPort(pos[0], pos[1])
	conn, err := cl.Dial(c.ctx, target)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", target, err)
	}
	defer conn.Close()
	// The command's context (Ctrl-C) ends the stream too.
	stop := context.AfterFunc(c.ctx, func() { conn.Close() })
	defer stop()

	// stdin → conn runs on its own goroutine. It is not joined: a read of
	// the process's stdin cannot be interrupted, so once the peer has
	// closed, the command returns and the process exits under it; its
	// next write fails on the closed conn.
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, c.in)
		if err == nil {
			err = closeWrite(conn)
		}
		sent <- err
	}()
	_, recvErr := io.Copy(c.out, conn)
	if recvErr != nil {
		if c.ctx.Err() != nil {
			return c.ctx.Err()
		}
		return fmt.Errorf("%s: %w", target, recvErr)
	}
	// The peer closed cleanly. If stdin had already failed, say so.
	select {
	case err := <-sent:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("%s: send: %w", target, err)
		}
	default:
	}
	return nil
}

// closeWrite half-closes conn, or closes it when it cannot.
func closeWrite(conn net.Conn) error {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return conn.Close()
}
