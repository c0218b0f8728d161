// Command benchnode is the namespace benchmark's helper, run inside a
// namespace by the benchmark (see package nsbench). It is a TCP sink, a TCP
// sender that reports throughput, or a bare wireguard-go tunnel endpoint:
//
//	benchnode tcpsink -listen ADDR
//	benchnode tcpsend -to ADDR -bytes N [-timeout D]
//	benchnode wg -tun NAME -uapi PATH [-mtu N]
//
// tcpsink reads each connection to its end and answers with the byte count
// it received (8 bytes, big endian). tcpsend sends N bytes, waits for that
// answer and prints {"bytes":N,"seconds":S} on standard output. wg creates
// a kernel TUN device with a wireguard-go device on the standard UDP bind
// and serves the WireGuard UAPI on a unix socket at PATH; the caller sets
// keys and peers through it, and addresses with ip. It is a test tool: it
// never reads or prints keys itself.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

const usage = "usage: benchnode tcpsink -listen ADDR | tcpsend -to ADDR -bytes N [-timeout D] | wg -tun NAME -uapi PATH [-mtu N]"

// chunk is the size of each read and write.
const chunk = 256 << 10

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "tcpsink":
		err = tcpsink(os.Args[2:])
	case "tcpsend":
		err = tcpsend(os.Args[2:])
	case "wg":
		err = wg(os.Args[2:])
	default:
		err = errors.New(usage)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchnode:", err)
		os.Exit(1)
	}
}

func tcpsink(args []string) error {
	fs := flag.NewFlagSet("tcpsink", flag.ContinueOnError)
	listen := fs.String("listen", ":5201", "TCP address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Println("listening on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			buf := make([]byte, chunk)
			var n uint64
			for {
				k, err := c.Read(buf)
				n += uint64(k)
				if err == io.EOF {
					break
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "benchnode: tcpsink:", err)
					return
				}
			}
			c.Write(binary.BigEndian.AppendUint64(nil, n))
		}()
	}
}

// result is what tcpsend prints.
type result struct {
	Bytes   uint64  `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

func tcpsend(args []string) error {
	fs := flag.NewFlagSet("tcpsend", flag.ContinueOnError)
	to := fs.String("to", "", "TCP address of a tcpsink")
	total := fs.Uint64("bytes", 1<<30, "bytes to send")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long (connecting included)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	deadline := time.Now().Add(*timeout)
	var c net.Conn
	var err error
	// The sink may still be starting (or a tunnel handshaking): retry.
	for {
		c, err = net.DialTimeout("tcp", *to, time.Until(deadline))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i * 7) // not all zeros, in case a path compresses
	}
	start := time.Now()
	for left := *total; left > 0; {
		n := min(left, chunk)
		if _, err := c.Write(buf[:n]); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		left -= n
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	var ack [8]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return fmt.Errorf("read the sink's count: %w", err)
	}
	secs := time.Since(start).Seconds()
	if got := binary.BigEndian.Uint64(ack[:]); got != *total {
		return fmt.Errorf("sink received %d bytes of %d", got, *total)
	}
	return json.NewEncoder(os.Stdout).Encode(result{Bytes: *total, Seconds: secs})
}

func wg(args []string) error {
	fs := flag.NewFlagSet("wg", flag.ContinueOnError)
	name := fs.String("tun", "wg0", "name of the TUN device to create")
	uapi := fs.String("uapi", "", "path of the UAPI unix socket to serve")
	mtu := fs.Int("mtu", device.DefaultMTU, "MTU of the TUN device")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *uapi == "" {
		return errors.New("wg: -uapi PATH is required")
	}
	tdev, err := tun.CreateTUN(*name, *mtu)
	if err != nil {
		return fmt.Errorf("create TUN %s: %w", *name, err)
	}
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), device.NewLogger(device.LogLevelError, "wg: "))
	defer dev.Close()
	ln, err := net.Listen("unix", *uapi)
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() { // ends when ln is closed
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-sig:
	case <-dev.Wait():
	}
	return nil
}
