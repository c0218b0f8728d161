package coordinator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"

	"github.com/warrenmesh/warren/internal/key"
)

// poll asks the revocation endpoint as a relay would.
func poll(t *testing.T, c *Coordinator, token, epoch string, since uint64) (int, revocationAnswer) {
	t.Helper()
	u := RelayRevocationsPath
	if epoch != "" {
		u += "?epoch=" + epoch + "&since=" + strconv.FormatUint(since, 10)
	}
	req := httptest.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	c.serveRelayRevocations(w, req)
	var ans revocationAnswer
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
			t.Fatalf("answer %q: %v", w.Body.String(), err)
		}
	}
	return w.Code, ans
}

func TestRelayRevocations(t *testing.T) {
	c := &Coordinator{cfg: Config{Relay: RelayConfig{AdmitToken: "s3cret"}}, revoked: newRevocations()}
	epoch := c.revoked.epoch
	var keys []string
	for range revocationLogLen + 3 {
		k := key.NewNode().Public()
		keys = append(keys, k.String())
		c.revoked.revoke(k)
	}
	n := uint64(len(keys))
	tests := []struct {
		name     string
		token    string
		epoch    string
		since    uint64
		code     int
		reset    bool
		wantKeys []string
	}{
		{"wrong token", "nope", epoch, n, http.StatusUnauthorized, false, nil},
		{"first poll", "s3cret", "", 0, http.StatusOK, true, nil},
		{"another coordinator run", "s3cret", "0123456789abcdef", n - 1, http.StatusOK, true, nil},
		{"from the future", "s3cret", epoch, n + 1, http.StatusOK, true, nil},
		{"fell out of the log", "s3cret", epoch, 2, http.StatusOK, true, nil},
		{"oldest in the log", "s3cret", epoch, 3, http.StatusOK, false, keys[3:]},
		{"two behind", "s3cret", epoch, n - 2, http.StatusOK, false, keys[n-2:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, ans := poll(t, c, tt.token, tt.epoch, tt.since)
			if code != tt.code {
				t.Fatalf("HTTP %d, want %d", code, tt.code)
			}
			if code != http.StatusOK {
				return
			}
			if ans.Epoch != epoch || ans.Next != n || ans.Reset != tt.reset || !slices.Equal(ans.Keys, append([]string{}, tt.wantKeys...)) {
				t.Fatalf("got epoch %s next %d reset %v keys %d; want %s %d %v %d", ans.Epoch, ans.Next, ans.Reset,
					len(ans.Keys), epoch, n, tt.reset, len(tt.wantKeys))
			}
		})
	}

	// A relay that is up to date waits for the next revocation.
	got := make(chan revocationAnswer, 1)
	go func() { _, ans := poll(t, c, "s3cret", epoch, n); got <- ans }()
	k := key.NewNode().Public()
	c.revoked.revoke(k)
	if ans := <-got; ans.Next != n+1 || !slices.Equal(ans.Keys, []string{k.String()}) {
		t.Fatalf("long poll got %+v, want the new key", ans)
	}
	// Closing the coordinator ends waiting polls.
	go func() { _, ans := poll(t, c, "s3cret", epoch, n+1); got <- ans }()
	c.revoked.close()
	if ans := <-got; len(ans.Keys) != 0 || ans.Reset {
		t.Fatalf("poll after close got %+v", ans)
	}
}
