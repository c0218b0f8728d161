package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/alert"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// TestAlertWebhook: disabling a user raises an admin-action alert, and a
// node's registration a new-device alert; both are audit events and
// reach the alert webhook as Slack-compatible text, and nothing else
// does.
func TestAlertWebhook(t *testing.T) {
	var mu sync.Mutex
	var texts []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var msg struct{ Text string }
		if err := json.Unmarshal(b, &msg); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		texts = append(texts, strings.Split(msg.Text, "\n")...)
		mu.Unlock()
	}))
	defer hook.Close()
	s := serve(t, coordinator.Config{Alerts: &alert.Config{Poll: 50 * time.Millisecond}, AlertWebhook: hook.URL + "/slack"})
	ctx := context.Background()
	u, err := s.c.Registry().CreateUser(ctx, admin, store.User{Name: "bob@example.com", Email: "bob@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Registry().SetUserDisabled(ctx, admin, u.ID, true); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the user.disable alert on the webhook", func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, line := range texts {
			if strings.Contains(line, "alert.admin-action") && strings.Contains(line, "user.disable") {
				return nil
			}
		}
		return fmt.Errorf("webhook got %q", texts)
	})
	mu.Lock()
	for _, line := range texts {
		if !strings.HasPrefix(line, "[warren] alert.") {
			t.Errorf("the alert webhook got a non-alert line %q", line)
		}
	}
	mu.Unlock()
	evs, err := s.c.Store().ListAudit(ctx, store.AuditFilter{Action: "alert.admin-action"})
	if err != nil || len(evs) == 0 {
		t.Fatalf("alert audit events: %v, %v", evs, err)
	}
}
