package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// ChangesChannel is the PostgreSQL notification channel on which every
// change of the feed (changes.go) is announced, with its ID, when its
// transaction commits.
const ChangesChannel = "warren_changes"

// ListenChanges connects to the PostgreSQL database at rawURL on a
// connection of its own, LISTENs on ChangesChannel, calls ready once
// listening, and then calls notify with each announced change ID until
// ctx ends or the connection fails, which it returns. Notifications only
// say "read the feed": whoever gets them still reads by ID, so one lost
// while the connection was down loses nothing (read the feed after
// ready).
func ListenChanges(ctx context.Context, rawURL string, ready func(), notify func(id int64)) error {
	cfg, _, err := parsePostgresURL(rawURL)
	if err != nil {
		return err
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("listen for changes on %s: %w", cfg.Database, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = c.Close(cctx)
	}()
	if _, err := c.Exec(ctx, "LISTEN "+ChangesChannel); err != nil {
		return fmt.Errorf("listen for changes on %s: %w", cfg.Database, err)
	}
	ready()
	for {
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("listen for changes on %s: %w", cfg.Database, err)
		}
		id, _ := strconv.ParseInt(n.Payload, 10, 64)
		notify(id)
	}
}
