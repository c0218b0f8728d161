package storecopy

import (
	"context"
	"errors"
	"fmt"

	"github.com/warrenmesh/warren/coordinator/store"
)

// prepareTarget opens the target as a store, which creates it if need be
// and applies the schema migrations, closes it and returns its schema
// version.
func prepareTarget(ctx context.Context, to Location) (int, error) {
	if to.Driver != SQLite {
		return 0, errors.New("this build has no PostgreSQL store")
	}
	st, err := store.Open(ctx, to.Path, nil)
	if err != nil {
		return 0, err
	}
	if err := st.Close(); err != nil {
		return 0, fmt.Errorf("close: %w", err)
	}
	return store.SchemaVersion(), nil
}
