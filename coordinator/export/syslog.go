package export

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// syslogSink sends each event as one RFC 5424 message: over TCP and TLS
// framed by octet counting (RFC 6587 3.4.1, RFC 5425), over UDP one
// datagram each (RFC 5426). The structured data element
// [warren@32473 id=… action=… outcome=…] carries the event ID, action
// and outcome; MSG is the event's JSON (the same object the other sinks
// write). 32473 is the enterprise number RFC 5612 sets aside for
// examples; SIEMs match on the SD-ID's name.
//
// TCP and TLS deliveries count as done once written to the stream:
// syslog has no acknowledgement, so events written just before the
// receiver drops the connection can be lost. UDP can lose any message.
// Use a webhook where every event must arrive.
type syslogSink struct {
	network  string // tcp, tls, udp
	addr     string
	facility int
	hostname string
	pid      string
	tls      *tls.Config
	conn     net.Conn
}

// maxUDPMessage is the longest datagram the UDP sink sends; longer
// messages have their MSG cut (RFC 5426 asks receivers for 2048 at
// least; most take 8192 and more over loopback and LANs).
const maxUDPMessage = 8192

// syslogDialTimeout bounds connecting to the receiver.
const syslogDialTimeout = 10 * time.Second

func openSyslog(c SinkConfig) (*syslogSink, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "-"
	}
	s := &syslogSink{network: c.Network, addr: c.Addr, facility: c.Facility, hostname: sdSafe(host, 255),
		pid: strconv.Itoa(os.Getpid())}
	if c.Network == "tls" {
		s.tls = &tls.Config{ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("read CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %s holds no PEM certificate", c.CAFile)
			}
			s.tls.RootCAs = pool
		}
	}
	return s, nil
}

func (s *syslogSink) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: syslogDialTimeout}
	var err error
	switch s.network {
	case "udp":
		s.conn, err = d.DialContext(ctx, "udp", s.addr)
	case "tls":
		td := tls.Dialer{NetDialer: &d, Config: s.tls}
		s.conn, err = td.DialContext(ctx, "tcp", s.addr)
	default:
		s.conn, err = d.DialContext(ctx, "tcp", s.addr)
	}
	return err
}

// Deliver implements Sink.
func (s *syslogSink) Deliver(ctx context.Context, events []Event) error {
	if s.conn == nil {
		if err := s.dial(ctx); err != nil {
			return fmt.Errorf("syslog %s: %w", s.addr, err)
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		s.conn.SetWriteDeadline(dl)
	}
	var buf bytes.Buffer
	for _, e := range events {
		msg, err := s.format(e)
		if err != nil {
			return err
		}
		if s.network == "udp" {
			if len(msg) > maxUDPMessage {
				msg = msg[:maxUDPMessage]
			}
			if _, err := s.conn.Write(msg); err != nil {
				return s.fail(err)
			}
			continue
		}
		buf.WriteString(strconv.Itoa(len(msg)))
		buf.WriteByte(' ')
		buf.Write(msg)
	}
	if buf.Len() > 0 {
		if _, err := s.conn.Write(buf.Bytes()); err != nil {
			return s.fail(err)
		}
	}
	return nil
}

// fail drops the connection after a write error; the next Deliver dials
// again.
func (s *syslogSink) fail(err error) error {
	s.conn.Close()
	s.conn = nil
	return fmt.Errorf("syslog %s: %w", s.addr, err)
}

// format renders e as an RFC 5424 message:
// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG.
func (s *syslogSink) format(e Event) ([]byte, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.Event.ID, err)
	}
	sev := 6 // informational
	if e.Event.Outcome == "failure" {
		sev = 4 // warning
	}
	msgID := "audit"
	if d, ok := strings.CutPrefix(e.Event.Dataset, "warren."); ok && d != "" {
		msgID = d
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "<%d>1 %s %s warren-coordinator %s %s [warren@32473 id=\"%s\" action=\"%s\" outcome=\"%s\"] ",
		s.facility*8+sev, e.Timestamp.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), s.hostname, s.pid, sdSafe(msgID, 32),
		sdEscape(e.Event.ID), sdEscape(e.Event.Action), sdEscape(e.Warren.Outcome))
	b.Write(body)
	return b.Bytes(), nil
}

// sdEscape escapes a structured data parameter value (RFC 5424 6.3.3).
func sdEscape(v string) string { return sdEscaper.Replace(v) }

var sdEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`)

// sdSafe makes v a header field: printable US-ASCII without spaces, at
// most n characters ("-" when empty).
func sdSafe(v string, n int) string {
	out := []byte{}
	for i := 0; i < len(v) && len(out) < n; i++ {
		if c := v[i]; c > 32 && c < 127 {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}

// Close implements Sink.
func (s *syslogSink) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
