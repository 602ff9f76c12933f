// Package chaos holds the chaos test of imagerelay (chaos_test.go): real processes — a
// nats-server (one node, or a 3-node cluster with stream and KV at R3), the cloud emulators
// with injected faults, two workers per function — under kill -9s, duplicated publishes and
// re-sent requests, checked from the emulators' call logs and from the bus for duplicate
// provider starts, replications that never settle, and lost events.
//
// Run it with `go test ./e2e/chaos/` (a small seeded run, part of `make test`) or `make chaos`
// (hundreds of replications, single node then cluster). The environment shapes a run:
//
//	CHAOS_SIZE=tiny|small|large   size of the run (default small; -short means tiny)
//	CHAOS_CLUSTER=1               a 3-node NATS cluster instead of a single server
//	CHAOS_SEED=N                  the seed of faults, kill moments and duplicates (default 1)
//	CHAOS_BIN=dir                 use dir/imagerelay and dir/nats-server instead of building them
package chaos
