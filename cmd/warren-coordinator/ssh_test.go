package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/asciicast"
	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/recording"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestSSHCommands: ssh sessions lists the stored sessions (table and
// JSON, filtered), and ssh recording writes a cast the coordinator took
// over real HTTP, or exits 3 naming the recorder node that holds one.
func TestSSHCommands(t *testing.T) {
	c, dir := startCoordinatorC(t)
	sd := "--state-dir=" + dir
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	st := c.Store()
	rec := store.SSHSession{ID: "ssh-00000000000000a1", Node: 3, NodeName: "prod", Src: 1, SrcName: "ann-laptop", User: 10,
		Login: "ann@example.com", LocalUser: "ann", Rule: "ssh[1]", PTY: true, Recorder: wire.RecordToCoordinator,
		Recording: "/api/v1/ssh/sessions/ssh-00000000000000a1/recording", Started: t0, ExitCode: -1}
	must(t, st.CreateSSHSession(ctx, rec, "the-token"))
	elsewhere := store.SSHSession{ID: "ssh-00000000000000b2", Node: 3, NodeName: "prod", Src: 2, SrcName: "bob-laptop", User: 11,
		Login: "bob@example.com", LocalUser: "bob", Rule: "ssh[1]", Command: "uptime", Recorder: "recorder-1",
		Recording: "http://100.64.0.5/v1/recordings/ssh-00000000000000b2", Started: t0.Add(time.Minute), ExitCode: -1}
	must(t, st.CreateSSHSession(ctx, elsewhere, ""))
	must(t, st.EndSSHSession(ctx, store.SSHSession{ID: elsewhere.ID, Node: 3, Ended: t0.Add(2 * time.Minute), Duration: 42 * time.Second, ExitCode: 0}))

	// The node streams the first session's cast to the coordinator.
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	up, err := recording.Start(ctx, nil, srv.URL+"/ssh/record/"+rec.ID, "the-token", recording.Meta{Session: rec.ID})
	must(t, err)
	w, err := asciicast.NewWriter(up, asciicast.Header{Version: 2, Width: 80, Height: 24}, time.Now)
	must(t, err)
	must(t, w.Output([]byte("$ whoami\r\nann\r\n")))
	must(t, w.Flush())
	must(t, up.Close())

	out := mustCLI(t, "ssh", "sessions", sd)
	for _, want := range []string{"SESSION", "ssh-00000000000000b2", "bob@example.com", "bob-laptop", "prod", "42s", "uptime",
		"recorder-1: http://100.64.0.5/", "ssh-00000000000000a1", "open", "/api/v1/ssh/sessions/ssh-00000000000000a1/recording"} {
		if !strings.Contains(out, want) {
			t.Errorf("ssh sessions: no %q in\n%s", want, out)
		}
	}
	var list []api.SSHSession
	must(t, json.Unmarshal([]byte(mustCLI(t, "ssh", "sessions", "--json", "--user", "bob@example.com", sd)), &list))
	if len(list) != 1 || list[0].ID != elsewhere.ID || list[0].Duration != 42 || list[0].ExitCode != 0 {
		t.Fatalf("ssh sessions --user bob --json: %+v", list)
	}
	if _, err := runCLI(t, "ssh", "sessions", "--node", "no-such-node", sd); err == nil || !strings.Contains(err.Error(), "no node") {
		t.Fatalf("unknown node: %v", err)
	}

	cast := mustCLI(t, "ssh", "recording", rec.ID, sd)
	h, events, err := asciicast.Parse(strings.NewReader(cast))
	if err != nil || h.Width != 80 || len(events) != 1 || events[0].Data != "$ whoami\r\nann\r\n" {
		t.Fatalf("ssh recording: %+v %+v %v\n%s", h, events, err, cast)
	}
	_, err = runCLI(t, "ssh", "recording", elsewhere.ID, sd)
	var ee *cli.ExitError
	if !errors.As(err, &ee) || ee.Code != exitRecordedElsewhere || !strings.Contains(err.Error(), "recorder-1") {
		t.Fatalf("recording held by a recorder node: %v", err)
	}
	if _, err := runCLI(t, "ssh", "recording", "ssh-ffffffffffffffff", sd); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown session: %v", err)
	}
}
