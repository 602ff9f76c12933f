// Package coretest holds what the function cores' unit tests share: a settable clock and a
// check of the events a core emits. It needs no NATS server (unlike package testenv), so the
// cores' tests stay fast and free of JetStream; they keep their records in memkv.
package coretest
