package coordinator

import (
	"context"
	"fmt"
	"net/url"

	"github.com/warrenmesh/warren/coordinator/access"
	"github.com/warrenmesh/warren/coordinator/export"
	"github.com/warrenmesh/warren/internal/policy"
)

// Just-in-time access (package access) in the coordinator: the service
// is built once the registry has loaded the nodes, started (its stored
// grants back in force) before any node connects, told of every policy
// change after the engine, and its new requests announced to
// --access-webhook.

// Access returns the just-in-time access service.
func (c *Coordinator) Access() *access.Service { return c.access }

// accessPolicyChanged re-checks the grants in force against p (a grant
// whose access rule left the policy ends). At the first load the service
// does not exist yet; Start checks them then.
func (c *Coordinator) accessPolicyChanged(p *policy.Policy) {
	if c.access == nil {
		return
	}
	if err := c.access.PolicyChanged(context.Background(), p); err != nil {
		c.log.Error("access: grants not re-checked against the new policy", "err", err)
	}
}

// accessWebhook is the export sink of --access-webhook: new requests
// (access.request) and break-glass grants (access.break-glass), refusals
// left out, in Slack's text with the events (format slack+events) unless
// the URL asks for another format, signed with the secret in secretFile
// if given.
func accessWebhook(raw, secretFile string) (export.SinkConfig, error) {
	hook, err := export.ParseURL(raw)
	if err != nil {
		return hook, fmt.Errorf("access webhook: %w", err)
	}
	if hook.Kind != export.KindWebhook {
		return hook, fmt.Errorf("access webhook %q: want an http:// or https:// URL", hook.Name)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return hook, fmt.Errorf("access webhook: %w", err)
	}
	q := u.Query()
	if !q.Has("format") {
		hook.Format = export.FormatSlackEvents
	}
	if !q.Has("name") {
		hook.Name = "access-webhook"
	}
	if secretFile != "" {
		if hook.SecretFile != "" || hook.SecretEnv != "" {
			return hook, fmt.Errorf("access webhook: give its secret either with --access-webhook-secret-file or in the URL, not both")
		}
		hook.SecretFile = secretFile
	}
	hook.Actions = []string{"access.request", "access.break-glass"}
	hook.OKOnly = true
	return hook, nil
}
