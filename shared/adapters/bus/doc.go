// Package bus is imagerelay's thin CloudEvents binding on NATS JetStream (nats.go's jetstream
// package): events travel in binary content mode (ce- headers, data as the payload) with
// Nats-Msg-Id set to the event id, so a re-published event is dropped by the stream's dedupe
// window. [Bus.Run] runs a function core on a durable pull consumer (the NATS worker) and
// settles each message through [fn.Settle], the outcome mapping it shares with the Lambda and
// Function Compute runtimes: Done → Ack; Defer, and Retry below MaxDeliver → a JetStream
// message schedule that fires on the function's defer subject, then Ack; Reject, malformed,
// or Retry at MaxDeliver → Term plus a copy on imagerelay.dlq.<function> with the reason;
// results that cannot be stored → NakWithDelay. Nothing is acknowledged before the core has
// run and its events are stored.
package bus
