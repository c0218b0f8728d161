// Package export sends the coordinator's audit trail (and, through the
// same Source interface, its flow records) to SIEMs: JSON-lines files
// with rotation, syslog (RFC 5424 over TCP, TLS or UDP) and HTTP webhooks
// (plain JSON, Splunk HEC, Elasticsearch bulk), in one documented event
// schema (Event, with ECS field names).
//
// Delivery is at least once: every sink keeps a cursor in the store (the
// last row it delivered from each source), reads the rows after it in
// bounded batches, delivers a batch and only then advances the cursor,
// retrying with capped, jittered exponential backoff while the sink
// fails. A sink that is down for an hour, or a coordinator restart, loses
// nothing; a batch delivered again carries the same event IDs.
//
// The package only reads the store's rows and writes its own cursors; it
// must never change audit events, and it must never log or export a
// secret: the shared secrets and tokens of webhooks are read from files
// or the environment, kept in the sink, and never appear in a log line,
// an error or a SinkConfig.
package export
