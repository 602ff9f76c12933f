// Package bus is imagerelay's thin CloudEvents binding on NATS JetStream (nats.go's jetstream
// package): events travel in binary content mode (ce- headers, data as the payload) with
// Nats-Msg-Id set to the event id, so a re-published event is dropped by the stream's dedupe
// window. A [Worker] runs a function core on a durable pull consumer and maps its outcome onto
// JetStream in one place: Done → Ack, Retry → NakWithDelay, Defer → re-publish on the
// function's defer subject with a not-before time, Reject or malformed → Term plus a copy on
// imagerelay.dlq.<function> with the reason. Nothing is acknowledged before the core has run
// and its events are stored.
package bus
