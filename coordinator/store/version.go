package store

// SchemaVersion is the schema version this code migrates a database to
// (the newest migration's); tools that copy or restore a database check
// theirs against it.
func SchemaVersion() int { return migrations[len(migrations)-1].version }
