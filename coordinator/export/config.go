package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tailscale/hujson"
)

// SinkConfig is one log sink, parsed from a URL (ParseURL) or a sink
// file (ParseFile). It holds where secrets are (files, environment
// variables), never a secret.
type SinkConfig struct {
	// Name keys the sink's cursor in the store: by default the URL
	// without its query.
	Name string
	Kind string // KindFile, KindSyslog or KindWebhook

	// File: the path, the size at which it is rotated, and how many
	// rotated files (path.1 … path.N) are kept.
	Path    string
	MaxSize int64
	Keep    int

	// Syslog: "tcp", "tls" or "udp", host:port, facility (0-23), and
	// for TLS a CA file (default: the system's roots) and server name.
	Network    string
	Addr       string
	Facility   int
	CAFile     string
	ServerName string

	// Actions, if set, limits the sink to events whose action starts with
	// one of these prefixes ("alert."); the others are skipped.
	Actions []string
	// OKOnly, if set, skips the events whose outcome is not ok (refused
	// or failed actions); it is set by code (the access webhook), never
	// from a URL.
	OKOnly bool

	// Webhook: the URL (without Warren's options), the body format, the
	// HMAC secret's and the token's file or environment variable, the
	// Elasticsearch index, and the request timeout.
	URL        string
	Format     string // FormatJSON, FormatSplunk, FormatElastic
	SecretFile string
	SecretEnv  string
	TokenFile  string
	TokenEnv   string
	Index      string
	Timeout    time.Duration

	// Batch caps the events of one delivery (0: the exporter's).
	Batch int
}

// Sink kinds.
const (
	KindFile    = "file"
	KindSyslog  = "syslog"
	KindWebhook = "webhook"
)

// Webhook formats.
const (
	FormatJSON    = "json"    // a JSON array of events
	FormatSplunk  = "splunk"  // Splunk HTTP Event Collector
	FormatElastic = "elastic" // Elasticsearch _bulk
	FormatSlack   = "slack"   // {"text": ...}: Slack and compatible incoming webhooks
	// FormatSlackEvents is FormatSlack's text with the events too:
	// {"text": ..., "events": [...]}, for receivers that act on them.
	FormatSlackEvents = "slack+events"
)

// Defaults.
const (
	DefaultMaxSize  = 100 << 20
	DefaultKeep     = 10
	DefaultFacility = 13 // log audit
	DefaultIndex    = "warren-events"
	DefaultTimeout  = 10 * time.Second
	maxBatch        = 10000
)

// ParseURL parses a --log-sink value:
//
//	file:///var/log/warren/events.jsonl?max-size=100MiB&keep=10
//	syslog+tcp://siem.example.com:514?facility=13
//	syslog+tls://siem.example.com:6514?ca-file=/etc/warren/siem-ca.pem
//	syslog+udp://127.0.0.1:514
//	https://siem.example.com/hook?format=splunk&token-file=/etc/warren/hec.token&secret-file=/etc/warren/hook.secret
//
// Every sink takes name= (its cursor's key) and batch=.
func ParseURL(s string) (SinkConfig, error) {
	u, err := url.Parse(s)
	if err != nil {
		return SinkConfig{}, fmt.Errorf("log sink %q: %w", redact(s), err)
	}
	if u.User != nil {
		return SinkConfig{}, fmt.Errorf("log sink %q: no user or password in the URL: put a token in a file (token-file=) or the environment (token-env=)", redact(s))
	}
	q := u.Query()
	opt := options{q: q, used: map[string]bool{}}
	c := SinkConfig{Name: opt.str("name")}
	base := *u
	base.RawQuery, base.Fragment = "", ""
	if c.Name == "" {
		c.Name = base.String()
	}
	if c.Batch, err = opt.int("batch", 0, 1, maxBatch); err != nil {
		return c, fmt.Errorf("log sink %q: %w", s, err)
	}
	if v := opt.str("actions"); v != "" {
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a == "" || len(a) > 64 {
				return c, fmt.Errorf("log sink %q: actions: want comma-separated action prefixes such as alert. and user.disable, e.g. actions=alert.,user.disable (no empty ones)", s)
			}
			c.Actions = append(c.Actions, a)
		}
	}
	switch u.Scheme {
	case "file":
		c.Kind = KindFile
		if u.Host != "" && u.Host != "localhost" {
			return c, fmt.Errorf("log sink %q: a file URL has no host: file:///path", s)
		}
		c.Path = u.Path
		if c.Path == "" || !strings.HasPrefix(c.Path, "/") {
			return c, fmt.Errorf("log sink %q: want an absolute path, file:///var/log/warren/events.jsonl", s)
		}
		c.MaxSize, c.Keep = DefaultMaxSize, DefaultKeep
		if v := opt.str("max-size"); v != "" {
			if c.MaxSize, err = parseSize(v); err != nil {
				return c, fmt.Errorf("log sink %q: max-size: %w", s, err)
			}
		}
		if c.Keep, err = opt.int("keep", DefaultKeep, 0, 1000); err != nil {
			return c, fmt.Errorf("log sink %q: %w", s, err)
		}
	case "syslog+tcp", "syslog+tls", "syslog+udp", "syslog":
		c.Kind = KindSyslog
		c.Network = strings.TrimPrefix(strings.TrimPrefix(u.Scheme, "syslog"), "+")
		if c.Network == "" {
			c.Network = "tcp"
		}
		if u.Path != "" && u.Path != "/" {
			return c, fmt.Errorf("log sink %q: a syslog URL has no path: syslog+tcp://host:514", s)
		}
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || host == "" {
			return c, fmt.Errorf("log sink %q: want host:port, e.g. syslog+tcp://siem.example.com:514", s)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return c, fmt.Errorf("log sink %q: port %q is not 1-65535", s, port)
		}
		c.Addr = u.Host
		if c.Facility, err = opt.int("facility", DefaultFacility, 0, 23); err != nil {
			return c, fmt.Errorf("log sink %q: %w", s, err)
		}
		if c.Network == "tls" {
			c.CAFile, c.ServerName = opt.str("ca-file"), opt.str("server-name")
			if c.ServerName == "" {
				c.ServerName = host
			}
		}
	case "http", "https":
		c.Kind = KindWebhook
		if u.Host == "" {
			return c, fmt.Errorf("log sink %q: no host", s)
		}
		c.Format = opt.str("format")
		switch c.Format {
		case "":
			c.Format = FormatJSON
		case FormatJSON, FormatSplunk, FormatElastic, FormatSlack, FormatSlackEvents:
		default:
			return c, fmt.Errorf("log sink %q: format %q: want json, splunk, elastic, slack or slack+events", s, c.Format)
		}
		c.SecretFile, c.SecretEnv = opt.str("secret-file"), opt.str("secret-env")
		c.TokenFile, c.TokenEnv = opt.str("token-file"), opt.str("token-env")
		if c.SecretFile != "" && c.SecretEnv != "" || c.TokenFile != "" && c.TokenEnv != "" {
			return c, fmt.Errorf("log sink %q: give a secret (or token) either as a file or in the environment, not both", s)
		}
		c.Index = opt.str("index")
		if c.Index == "" {
			c.Index = DefaultIndex
		}
		c.Timeout = DefaultTimeout
		if v := opt.str("timeout"); v != "" {
			if c.Timeout, err = time.ParseDuration(v); err != nil || c.Timeout <= 0 || c.Timeout > 5*time.Minute {
				return c, fmt.Errorf("log sink %q: timeout %q: want a duration up to 5m, e.g. 10s", s, v)
			}
		}
		// The webhook gets the URL without Warren's own options.
		for _, k := range []string{"secret-file", "secret-env", "token-file", "token-env", "format", "index", "timeout", "batch", "name", "actions"} {
			q.Del(k)
		}
		base.RawQuery = q.Encode()
		c.URL = base.String()
	case "":
		return c, fmt.Errorf("log sink %q: no scheme: want file://, syslog+tcp://, syslog+tls://, syslog+udp://, http:// or https://", s)
	default:
		return c, fmt.Errorf("log sink %q: unknown scheme %q: want file, syslog+tcp, syslog+tls, syslog+udp, http or https", s, u.Scheme)
	}
	if c.Kind != KindWebhook {
		if extra := opt.unused(); extra != "" {
			return c, fmt.Errorf("log sink %q: unknown option %q", s, extra)
		}
	}
	return c, nil
}

// options reads a URL's query, remembering which keys were read.
type options struct {
	q    url.Values
	used map[string]bool
}

func (o options) str(k string) string { o.used[k] = true; return o.q.Get(k) }

func (o options) int(k string, def, lo, hi int) (int, error) {
	v := o.str(k)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s=%q: want a whole number from %d to %d", k, v, lo, hi)
	}
	return n, nil
}

func (o options) unused() string {
	for k := range o.q {
		if !o.used[k] {
			return k
		}
	}
	return ""
}

// parseSize parses "100MiB", "10MB", "512KiB", "1GiB" or a byte count.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("%q: want a size such as 100MiB", s)
	}
	if n*mult < 4096 {
		return 0, fmt.Errorf("%q: want at least 4KiB", s)
	}
	return n * mult, nil
}

// redact hides a URL's password, should one be given by mistake.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	if i := strings.Index(s, "@"); i >= 0 {
		return "…" + s[i:]
	}
	return s
}

// sinkFile is a --log-sinks file: HuJSON (JSON with comments and
// trailing commas).
//
//	{
//	  "sinks": [
//	    {"url": "file:///var/log/warren/events.jsonl?keep=5"},
//	    {"name": "splunk", "url": "https://hec.example.com:8088/services/collector?format=splunk&token-file=/etc/warren/hec.token"},
//	  ],
//	}
type sinkFile struct {
	Sinks []struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	} `json:"sinks"`
}

// ParseFile parses a --log-sinks file; name, when given, overrides the
// URL's name=.
func ParseFile(data []byte) ([]SinkConfig, error) {
	std, err := hujson.Standardize(data)
	if err != nil {
		return nil, fmt.Errorf("log sinks file: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(std)))
	dec.DisallowUnknownFields()
	var f sinkFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("log sinks file: %w (want {\"sinks\": [{\"url\": \"...\"}]})", err)
	}
	if dec.More() {
		return nil, errors.New("log sinks file: more than one JSON value")
	}
	var out []SinkConfig
	for i, s := range f.Sinks {
		if s.URL == "" {
			return nil, fmt.Errorf("log sinks file: sinks[%d]: no url", i)
		}
		c, err := ParseURL(s.URL)
		if err != nil {
			return nil, fmt.Errorf("log sinks file: sinks[%d]: %w", i, err)
		}
		if s.Name != "" {
			c.Name = s.Name
		}
		out = append(out, c)
	}
	return out, nil
}
