package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/policyfile"
	"github.com/warrenmesh/warren/coordinator/registry"
)

// Client calls the admin API, over the coordinator's unix socket or over
// HTTPS with an API key.
type Client struct {
	http   *http.Client
	base   string
	apiKey string
}

// NewLocalClient returns a client for the admin socket at path.
func NewLocalClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{http: &http.Client{Transport: tr}, base: "http://warren-coordinator"}
}

// NewRemoteClient returns a client for the admin API at baseURL (https://…)
// authenticating with apiKey. hc may be nil.
func NewRemoteClient(baseURL, apiKey string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{http: hc, base: strings.TrimRight(baseURL, "/"), apiKey: apiKey}
}

// Error is an error answered by the API.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("coordinator answered %d: %s", e.Status, e.Message)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach coordinator admin API: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read admin API response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var er ErrorResponse
		if json.Unmarshal(data, &er) != nil || er.Error == "" {
			er.Error = strings.TrimSpace(string(data))
		}
		return &Error{Status: resp.StatusCode, Message: er.Error}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode admin API response: %w", err)
	}
	return nil
}

func call[T any](ctx context.Context, c *Client, method, path string, in any) (T, error) {
	var out T
	err := c.do(ctx, method, path, in, &out)
	return out, err
}

// WhoAmI returns the caller as the coordinator sees it.
func (c *Client) WhoAmI(ctx context.Context) (WhoAmI, error) {
	return call[WhoAmI](ctx, c, "GET", "/api/v1/whoami", nil)
}

// ListUsers lists users.
func (c *Client) ListUsers(ctx context.Context) ([]User, error) {
	return call[[]User](ctx, c, "GET", "/api/v1/users", nil)
}

// CreateUser creates a user.
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (User, error) {
	return call[User](ctx, c, "POST", "/api/v1/users", req)
}

// SetUserDisabled disables or enables a user.
func (c *Client) SetUserDisabled(ctx context.Context, id int64, disabled bool) (User, error) {
	verb := "enable"
	if disabled {
		verb = "disable"
	}
	return call[User](ctx, c, "POST", fmt.Sprintf("/api/v1/users/%d/%s", id, verb), nil)
}

// SetUserRole makes a user an admin or a member ("admin", "member").
func (c *Client) SetUserRole(ctx context.Context, id int64, role string) (User, error) {
	return call[User](ctx, c, "POST", fmt.Sprintf("/api/v1/users/%d/role", id), SetRoleRequest{Role: role})
}

// DeleteUser deletes a user.
func (c *Client) DeleteUser(ctx context.Context, id int64) error {
	return c.do(ctx, "DELETE", fmt.Sprintf("/api/v1/users/%d", id), nil, nil)
}

// ListNodes lists nodes.
func (c *Client) ListNodes(ctx context.Context) ([]Node, error) {
	return call[[]Node](ctx, c, "GET", "/api/v1/nodes", nil)
}

// ApproveNode lets a pending node into the mesh (admins only).
func (c *Client) ApproveNode(ctx context.Context, id int64) (Node, error) {
	return call[Node](ctx, c, "POST", fmt.Sprintf("/api/v1/nodes/%d/approve", id), nil)
}

// ExpireNode expires a node's key now.
func (c *Client) ExpireNode(ctx context.Context, id int64) (Node, error) {
	return call[Node](ctx, c, "POST", fmt.Sprintf("/api/v1/nodes/%d/expire", id), nil)
}

// TagNode replaces a node's tags.
func (c *Client) TagNode(ctx context.Context, id int64, tags []string) (Node, error) {
	return call[Node](ctx, c, "POST", fmt.Sprintf("/api/v1/nodes/%d/tags", id), SetTagsRequest{Tags: tags})
}

// SetKeyLifetime overrides how long a node's keys last (admins only):
// 0 returns it to the coordinator's default, negative
// (store.KeyLifetimeNever) means never. The node's key then expires
// lifetime from now.
func (c *Client) SetKeyLifetime(ctx context.Context, id int64, lifetime time.Duration) (Node, error) {
	return call[Node](ctx, c, "POST", fmt.Sprintf("/api/v1/nodes/%d/key-lifetime", id),
		SetKeyLifetimeRequest{Lifetime: registry.FormatKeyLifetime(lifetime)})
}

// RenameNode gives a node a new name (a DNS label no other node has).
func (c *Client) RenameNode(ctx context.Context, id int64, name string) (Node, error) {
	return call[Node](ctx, c, "POST", fmt.Sprintf("/api/v1/nodes/%d/rename", id), RenameNodeRequest{Name: name})
}

// DeleteNode deletes a node.
func (c *Client) DeleteNode(ctx context.Context, id int64) error {
	return c.do(ctx, "DELETE", fmt.Sprintf("/api/v1/nodes/%d", id), nil, nil)
}

// ListAuthKeys lists pre-auth keys.
func (c *Client) ListAuthKeys(ctx context.Context) ([]AuthKey, error) {
	return call[[]AuthKey](ctx, c, "GET", "/api/v1/authkeys", nil)
}

// CreateAuthKey creates a pre-auth key; the result's Key is shown once.
func (c *Client) CreateAuthKey(ctx context.Context, req CreateAuthKeyRequest) (AuthKey, error) {
	return call[AuthKey](ctx, c, "POST", "/api/v1/authkeys", req)
}

// RevokeAuthKey revokes a pre-auth key, or expires it now if expire.
func (c *Client) RevokeAuthKey(ctx context.Context, id int64, expire bool) (AuthKey, error) {
	verb := "revoke"
	if expire {
		verb = "expire"
	}
	return call[AuthKey](ctx, c, "POST", fmt.Sprintf("/api/v1/authkeys/%d/%s", id, verb), nil)
}

// ListAPIKeys lists API keys.
func (c *Client) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	return call[[]APIKey](ctx, c, "GET", "/api/v1/apikeys", nil)
}

// CreateAPIKey creates an API key; the result's Key is shown once.
func (c *Client) CreateAPIKey(ctx context.Context, req CreateAPIKeyRequest) (APIKey, error) {
	return call[APIKey](ctx, c, "POST", "/api/v1/apikeys", req)
}

// ListAudit lists audit events, newest first. since is a duration ("1h"),
// action an exact action name; both may be empty.
func (c *Client) ListAudit(ctx context.Context, since, action string, limit int) ([]AuditEvent, error) {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if action != "" {
		q.Set("action", action)
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	return call[[]AuditEvent](ctx, c, "GET", "/api/v1/audit?"+q.Encode(), nil)
}

// PolicyStatus returns the policy in force and the last rejected file.
func (c *Client) PolicyStatus(ctx context.Context) (policyfile.Status, error) {
	return call[policyfile.Status](ctx, c, "GET", "/api/v1/policy", nil)
}

// PolicyHistory lists accepted policy versions, newest first.
func (c *Client) PolicyHistory(ctx context.Context, limit int) ([]PolicyVersion, error) {
	return call[[]PolicyVersion](ctx, c, "GET", fmt.Sprintf("/api/v1/policy/history?limit=%d", limit), nil)
}

// ReloadPolicy makes the coordinator read its policy file now. A file that
// fails validation comes back as an error with its positions.
func (c *Client) ReloadPolicy(ctx context.Context) (policyfile.Status, error) {
	return call[policyfile.Status](ctx, c, "POST", "/api/v1/policy/reload", struct{}{})
}

// ApplyPolicy puts a policy file's source in force, recorded as the
// caller's; an invalid source comes back as an error with its positions.
func (c *Client) ApplyPolicy(ctx context.Context, source []byte) (ApplyPolicyResponse, error) {
	return call[ApplyPolicyResponse](ctx, c, "POST", "/api/v1/policy", ApplyPolicyRequest{Source: string(source)})
}

// ExplainPolicy asks which rule allows a connection, or why none does.
func (c *Client) ExplainPolicy(ctx context.Context, req ExplainRequest) (ExplainResponse, error) {
	return call[ExplainResponse](ctx, c, "POST", "/api/v1/policy/explain", req)
}

// QueryAudit lists the audit events q selects, newest first.
func (c *Client) QueryAudit(ctx context.Context, q AuditQuery) ([]AuditEvent, error) {
	v := url.Values{}
	for k, s := range map[string]string{"since": q.Since, "until": q.Until, "actor": q.Actor, "action": q.Action, "target": q.Target, "outcome": q.Outcome} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	return call[[]AuditEvent](ctx, c, "GET", "/api/v1/audit?"+v.Encode(), nil)
}

// ListFlows lists the flow records q selects, newest (by last packet)
// first.
func (c *Client) ListFlows(ctx context.Context, q FlowQuery) ([]Flow, error) {
	v := url.Values{}
	for k, s := range map[string]string{"since": q.Since, "until": q.Until, "user": q.User, "src": q.Src, "dst": q.Dst} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Port != 0 {
		v.Set("port", fmt.Sprint(q.Port))
	}
	if q.Denied {
		v.Set("denied", "true")
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	return call[[]Flow](ctx, c, "GET", "/api/v1/flows?"+v.Encode(), nil)
}
