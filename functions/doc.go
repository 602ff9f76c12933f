// Package functions holds imagerelay's function cores, one package each (fanout, replicate,
// poller, rebuild), and the rules they share (lifecycle). A core is pure: it takes one
// event and its own ports (records, a concurrency limiter, the clouds, the desktop fleet) and
// returns the events to emit and an outcome. It imports the event contract, the domain and the
// core contract only; the adapters that implement its ports, the runtimes that host it and the
// composition root that wires it all point inward at it. layout_test.go enforces the rule.
//
// Each function's main lives in functions/<name>/cmd: it wires the core (shared/compose) and
// hands it to a runtime (shared/runtime).
package functions
