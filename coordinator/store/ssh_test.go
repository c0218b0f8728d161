package store

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestSSHSessions: sessions round-trip, filter, end once, and a recording
// token is taken once, for its own session only, and is stored hashed.
func TestSSHSessions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, url := bk.openTest(t)
		ctx := context.Background()
		t0 := time.Unix(1800000000, 0).UTC()
		a := SSHSession{ID: "ssh-aa", Node: 3, NodeName: "prod", Src: 1, SrcName: "laptop", SrcAddr: "100.64.0.1:50000",
			User: 10, Login: "ann@example.com", LocalUser: "ann", Rule: "ssh[1]", Command: "uptime", PTY: true,
			Recorder: "coordinator", Recording: "/api/v1/ssh/sessions/ssh-aa/recording", Started: t0, ExitCode: -1}
		b := SSHSession{ID: "ssh-bb", Node: 4, NodeName: "db", Src: 2, SrcName: "desk", User: 11, Login: "bob@example.com",
			LocalUser: "bob", Rule: "ssh[0]", Unrecorded: true, Started: t0.Add(time.Minute), ExitCode: -1}
		must(t, s.CreateSSHSession(ctx, a, "secret-token"))
		must(t, s.CreateSSHSession(ctx, b, ""))
		if err := s.CreateSSHSession(ctx, a, ""); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate ID: %v", err)
		}
		got, err := s.GetSSHSession(ctx, a.ID)
		must(t, err)
		if !reflect.DeepEqual(got, a) {
			t.Fatalf("got %+v, want %+v", got, a)
		}
		ids := func(ss []SSHSession) string {
			var out []string
			for _, x := range ss {
				out = append(out, x.ID)
			}
			return strings.Join(out, ",")
		}
		for _, tc := range []struct {
			name string
			f    SSHSessionFilter
			want string
		}{
			{"all newest first", SSHSessionFilter{}, "ssh-bb,ssh-aa"},
			{"by login", SSHSessionFilter{Login: "ann@example.com"}, "ssh-aa"},
			{"by destination", SSHSessionFilter{Node: 4}, "ssh-bb"},
			{"by source", SSHSessionFilter{Node: 1}, "ssh-aa"},
			{"since", SSHSessionFilter{Since: t0.Add(time.Second)}, "ssh-bb"},
			{"limit", SSHSessionFilter{Limit: 1}, "ssh-bb"},
		} {
			list, err := s.ListSSHSessions(ctx, tc.f)
			must(t, err)
			if ids(list) != tc.want {
				t.Errorf("%s: got %s, want %s", tc.name, ids(list), tc.want)
			}
		}

		// The token: stored hashed, wrong ones and other sessions refused,
		// taken once.
		var stored string
		must(t, bk.raw(t, url).QueryRowContext(ctx, `SELECT record_token FROM ssh_sessions WHERE id = ?`, a.ID).Scan(&stored))
		if stored == "" || strings.Contains(stored, "secret-token") {
			t.Fatalf("stored token %q", stored)
		}
		for _, bad := range [][2]string{{a.ID, "wrong"}, {a.ID, ""}, {b.ID, "secret-token"}, {"ssh-none", "secret-token"}} {
			if _, err := s.TakeSSHRecordToken(ctx, bad[0], bad[1]); !errors.Is(err, ErrNotFound) {
				t.Fatalf("token %q for %s: %v", bad[1], bad[0], err)
			}
		}
		if got, err := s.TakeSSHRecordToken(ctx, a.ID, "secret-token"); err != nil || got.ID != a.ID {
			t.Fatalf("take: %+v %v", got, err)
		}
		if _, err := s.TakeSSHRecordToken(ctx, a.ID, "secret-token"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second take: %v", err)
		}
		must(t, s.SetSSHRecording(ctx, a.ID, "cast:ssh-aa"))

		// The end: only by the node that runs it, once.
		end := SSHSession{ID: a.ID, Node: 4, Ended: t0.Add(time.Hour), Duration: time.Hour, ExitCode: 0, Reason: ""}
		if err := s.EndSSHSession(ctx, end); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ended by another node: %v", err)
		}
		end.Node = 3
		must(t, s.EndSSHSession(ctx, end))
		if err := s.EndSSHSession(ctx, end); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ended twice: %v", err)
		}
		got, _ = s.GetSSHSession(ctx, a.ID)
		if !got.Ended.Equal(end.Ended) || got.Duration != time.Hour || got.ExitCode != 0 || got.Recording != "cast:ssh-aa" {
			t.Fatalf("after the end: %+v", got)
		}
	})
}

// TestUserDisplayName: a user's display name (migration 15) is stored at
// creation and by updates.
func TestUserDisplayName(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		u, err := s.CreateUser(ctx, User{Name: "ann@example.com", DisplayName: "Ann Lee", Role: RoleMember, Created: time.Unix(1800000000, 0)})
		must(t, err)
		if u.DisplayName != "Ann Lee" {
			t.Fatalf("created: %q", u.DisplayName)
		}
		u.DisplayName = "Ann Lee-Smith"
		must(t, s.UpdateUser(ctx, u))
		if got, _ := s.GetUser(ctx, u.ID); got.DisplayName != "Ann Lee-Smith" {
			t.Fatalf("updated: %q", got.DisplayName)
		}
	})
}
