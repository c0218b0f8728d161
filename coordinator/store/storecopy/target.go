package storecopy

import (
	"context"
	"fmt"

	"github.com/warrenmesh/warren/coordinator/store"
)

// prepareTarget opens the target as a store, which creates it if need be
// and applies the schema migrations, closes it and returns its schema
// version.
func prepareTarget(ctx context.Context, to Location) (int, error) {
	st, err := store.OpenURL(ctx, to.storeURL(), store.Options{})
	if err != nil {
		return 0, err
	}
	if err := st.Close(); err != nil {
		return 0, fmt.Errorf("close: %w", err)
	}
	return store.SchemaVersion(), nil
}

// storeURL is the location as store.OpenURL takes it.
func (l Location) storeURL() string {
	if l.Driver == Postgres {
		return l.URL
	}
	return "sqlite:" + l.Path
}
