package coordinator

import (
	"slices"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/export"
)

func TestAccessWebhookConfig(t *testing.T) {
	for _, tc := range []struct {
		url, secretFile string
		format, name    string
		secret          string
		err             string
	}{
		{url: "https://hooks.example.com/x", format: export.FormatSlackEvents, name: "access-webhook"},
		{url: "https://hooks.example.com/x", secretFile: "/etc/warren/hook.secret", format: export.FormatSlackEvents, name: "access-webhook", secret: "/etc/warren/hook.secret"},
		{url: "https://hooks.example.com/x?format=slack&name=jit&secret-file=/s", format: export.FormatSlack, name: "jit", secret: "/s"},
		{url: "https://hooks.example.com/x?secret-file=/s", secretFile: "/t", err: "not both"},
		{url: "file:///var/log/x", err: "http:// or https://"},
	} {
		hook, err := accessWebhook(tc.url, tc.secretFile)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error saying %q", tc.url, err, tc.err)
			}
			continue
		}
		if err != nil || hook.Format != tc.format || hook.Name != tc.name || hook.SecretFile != tc.secret || !hook.OKOnly ||
			!slices.Equal(hook.Actions, []string{"access.request", "access.break-glass"}) {
			t.Errorf("%s: %+v, %v", tc.url, hook, err)
		}
	}
}
