package storecopy

import (
	"context"
	"fmt"

	"github.com/warrenmesh/warren/coordinator/store"
)

// prepareTarget opens the target as a store, which creates it if need be
// and migrates it to store.SchemaVersion() (or fails, for a database newer
// than this code), and closes it.
func prepareTarget(ctx context.Context, to Location) error {
	st, err := store.OpenURL(ctx, to.storeURL(), store.Options{})
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// storeURL is the location as store.OpenURL takes it.
func (l Location) storeURL() string {
	if l.Driver == Postgres {
		return l.URL
	}
	return "sqlite:" + l.Path
}
