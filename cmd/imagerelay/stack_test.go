package main

import (
	"testing"

	"github.com/imagerelay/imagerelay/shared/config"
)

// TestStackEmbeddedSyncAlways checks that nats.syncAlways reaches the embedded server that
// `up`, `worker` and `demo` start.
func TestStackEmbeddedSyncAlways(t *testing.T) {
	cfg := config.Defaults()
	cfg.NATS.StoreDir = t.TempDir()
	cfg.NATS.Listen = config.ListenNone
	cfg.NATS.SyncAlways = true
	st, err := startStack(t.Context(), cfg, logger(t.Output(), "error"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if !st.server.SyncAlways() {
		t.Error("nats.syncAlways is true but the embedded server does not fsync every write")
	}
}
