package export

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// SignatureHeader carries a webhook body's HMAC-SHA256 under the sink's
// shared secret: "sha256=" and the lowercase hex of
// HMAC-SHA256(secret, body). A receiver computes the same over the raw
// body it read and compares in constant time (Verify does).
const SignatureHeader = "X-Warren-Signature"

// Sign returns the SignatureHeader value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header is body's signature under secret.
func Verify(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// webhookSink POSTs each batch to a URL in one of three formats.
type webhookSink struct {
	url    string
	format string
	index  string
	secret []byte // HMAC key; nil: unsigned
	auth   string // Authorization header value; "" for none
	client *http.Client
}

// maxResponse bounds how much of a webhook's response is read.
const maxResponse = 1 << 20

func openWebhook(c SinkConfig) (*webhookSink, error) {
	secret, err := readSecret(c.SecretFile, c.SecretEnv, "secret")
	if err != nil {
		return nil, err
	}
	token, err := readSecret(c.TokenFile, c.TokenEnv, "token")
	if err != nil {
		return nil, err
	}
	if c.Format == FormatSplunk && token == "" {
		return nil, errors.New("a Splunk HEC sink needs its token: token-file= or token-env=")
	}
	s := &webhookSink{url: c.URL, format: c.Format, index: c.Index, client: &http.Client{Timeout: c.Timeout}}
	if secret != "" {
		s.secret = []byte(secret)
	}
	if token != "" {
		switch c.Format {
		case FormatSplunk:
			s.auth = "Splunk " + token
		case FormatElastic:
			s.auth = "ApiKey " + token
		default:
			s.auth = "Bearer " + token
		}
	}
	return s, nil
}

// readSecret reads a secret from a file (trimmed) or an environment
// variable; errors name where, never what.
func readSecret(file, env, what string) (string, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read %s file: %w", what, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s file %s is empty", what, file)
		}
		return v, nil
	case env != "":
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			return "", fmt.Errorf("%s variable %s is empty or unset", what, env)
		}
		return v, nil
	}
	return "", nil
}

// Deliver implements Sink.
func (s *webhookSink) Deliver(ctx context.Context, events []Event) error {
	body, ctype, err := s.encode(events)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "warren-coordinator")
	if s.secret != nil {
		req.Header.Set(SignatureHeader, Sign(s.secret, body))
	}
	if s.auth != "" {
		req.Header.Set("Authorization", s.auth)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: %s", resp.Status)
	}
	if s.format == FormatElastic {
		// _bulk answers 200 even when items failed.
		var r struct {
			Errors bool `json:"errors"`
		}
		if err := json.Unmarshal(reply, &r); err != nil {
			return fmt.Errorf("webhook: Elasticsearch reply: %w", err)
		}
		if r.Errors {
			return errors.New("webhook: Elasticsearch refused some events of the batch")
		}
	}
	return nil
}

// encode renders a batch in the sink's format.
func (s *webhookSink) encode(events []Event) (body []byte, contentType string, err error) {
	var b bytes.Buffer
	switch s.format {
	case FormatSplunk:
		// HEC takes events one after another in one body.
		for _, e := range events {
			line, err := json.Marshal(struct {
				Time       float64 `json:"time"`
				Source     string  `json:"source"`
				Sourcetype string  `json:"sourcetype"`
				Event      Event   `json:"event"`
			}{float64(e.Timestamp.UnixMicro()) / 1e6, "warren", "_json", e})
			if err != nil {
				return nil, "", err
			}
			b.Write(line)
			b.WriteByte('\n')
		}
		return b.Bytes(), "application/json", nil
	case FormatElastic:
		for _, e := range events {
			action, _ := json.Marshal(map[string]map[string]string{"index": {"_index": s.index, "_id": e.Event.ID}})
			doc, err := json.Marshal(e)
			if err != nil {
				return nil, "", err
			}
			b.Write(action)
			b.WriteByte('\n')
			b.Write(doc)
			b.WriteByte('\n')
		}
		return b.Bytes(), "application/x-ndjson", nil
	case FormatSlack, FormatSlackEvents:
		// One message per batch, a line per event: its detail's text
		// (alerts have one), else what happened to what, by whom.
		var lines []string
		for _, e := range events {
			lines = append(lines, eventText(e))
		}
		if s.format == FormatSlackEvents {
			body, err := json.Marshal(struct {
				Text   string  `json:"text"`
				Events []Event `json:"events"`
			}{strings.Join(lines, "\n"), events})
			return body, "application/json", err
		}
		body, err := json.Marshal(map[string]string{"text": strings.Join(lines, "\n")})
		return body, "application/json", err
	default:
		body, err := json.Marshal(events)
		return body, "application/json", err
	}
}

// Close implements Sink.
func (s *webhookSink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// Open builds the sink c describes, reading its secrets.
func Open(c SinkConfig) (Sink, error) {
	switch c.Kind {
	case KindFile:
		return openFile(c)
	case KindSyslog:
		return openSyslog(c)
	case KindWebhook:
		return openWebhook(c)
	}
	return nil, fmt.Errorf("unknown kind of log sink %q", c.Kind)
}

// eventText is e in one line for people: the detail's "text" when it has
// one, else the action, its target and actor, and the outcome.
func eventText(e Event) string {
	var d struct {
		Text string `json:"text"`
	}
	if len(e.Warren.Detail) > 0 && json.Unmarshal(e.Warren.Detail, &d) == nil && d.Text != "" {
		return fmt.Sprintf("[warren] %s: %s", e.Event.Action, d.Text)
	}
	return fmt.Sprintf("[warren] %s on %s by %s: %s", e.Event.Action, e.Warren.Target, e.Warren.Actor, e.Warren.Outcome)
}
