package bench

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Ops are the JetStream operations a run cost, measured at the server.
//
// Stored counts come from the streams' last sequence before and after (every message a stream
// stored, whoever published it: events, deferrals the server fires, dead letters; for a KV
// stream, every put, update and delete that succeeded). Requests come from a core NATS
// subscription on $JS.API.> and $JS.ACK.>: every JetStream API request and every ack any
// client sent, classified by subject (KV reads are message gets on a KV_ stream).
type Ops struct {
	// Stored is messages stored per stream.
	Stored map[string]uint64
	// Requests is requests per kind: "kv get", "kv get (rate limits)", "msg get", "pull", "ack",
	// "nak", "in progress",
	// "term", and "api <verb>" for the rest.
	Requests map[string]uint64
}

// Events is messages stored in the event stream.
func (o Ops) Events(stream string) uint64 { return o.Stored[stream] }

// KVWrites is messages stored in every KV_ stream (records, plans, semaphores, rate limits).
func (o Ops) KVWrites() uint64 {
	var n uint64
	for s, v := range o.Stored {
		if strings.HasPrefix(s, "KV_") {
			n += v
		}
	}
	return n
}

// KVReads is message gets (direct or API) on KV_ streams.
func (o Ops) KVReads() uint64 { return o.Requests["kv get"] + o.Requests["kv get (rate limits)"] }

// Total is what the report calls JetStream operations: events stored + KV writes + KV reads,
// as issue 14 counted them.
func (o Ops) Total(stream string) uint64 { return o.Events(stream) + o.KVWrites() + o.KVReads() }

// opsMeter measures Ops between start and stop.
type opsMeter struct {
	js     jetstream.JetStream
	before map[string]uint64
	subs   []*nats.Subscription
	mu     sync.Mutex
	reqs   map[string]uint64
}

// startOps snapshots the streams and starts counting requests on nc.
func startOps(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) (*opsMeter, error) {
	m := &opsMeter{js: js, reqs: map[string]uint64{}}
	var err error
	if m.before, err = lastSeqs(ctx, js); err != nil {
		return nil, err
	}
	for _, subj := range []string{"$JS.API.>", "$JS.ACK.>"} {
		sub, err := nc.Subscribe(subj, m.count)
		if err != nil {
			m.unsubscribe()
			return nil, err
		}
		_ = sub.SetPendingLimits(-1, -1)
		m.subs = append(m.subs, sub)
	}
	// The server routes to the subscriptions only once it has seen them.
	if err := nc.Flush(); err != nil {
		m.unsubscribe()
		return nil, err
	}
	return m, nil
}

func (m *opsMeter) count(msg *nats.Msg) {
	kind := classify(msg.Subject, msg.Data)
	m.mu.Lock()
	m.reqs[kind]++
	m.mu.Unlock()
}

// classify names the kind of a $JS.API or $JS.ACK message.
func classify(subject string, data []byte) string {
	if strings.HasPrefix(subject, "$JS.ACK.") {
		switch {
		case len(data) == 0 || strings.HasPrefix(string(data), "+ACK"):
			return "ack"
		case strings.HasPrefix(string(data), "-NAK"):
			return "nak"
		case strings.HasPrefix(string(data), "+WPI"):
			return "in progress"
		case strings.HasPrefix(string(data), "+TERM"):
			return "term"
		}
		return "ack other"
	}
	rest := strings.TrimPrefix(subject, "$JS.API.")
	switch {
	case strings.HasPrefix(rest, "DIRECT.GET.KV_"), strings.HasPrefix(rest, "STREAM.MSG.GET.KV_"):
		if strings.HasSuffix(rest, "-ratelimit") {
			return "kv get (rate limits)"
		}
		return "kv get"
	case strings.HasPrefix(rest, "DIRECT.GET."), strings.HasPrefix(rest, "STREAM.MSG.GET."):
		return "msg get"
	case strings.HasPrefix(rest, "CONSUMER.MSG.NEXT."):
		return "pull"
	}
	verb := rest
	if parts := strings.Split(rest, "."); len(parts) >= 2 {
		verb = parts[0] + "." + parts[1]
	}
	return "api " + verb
}

func (m *opsMeter) unsubscribe() {
	for _, s := range m.subs {
		_ = s.Unsubscribe()
	}
	m.subs = nil
}

// stop ends the measurement and returns what happened since start.
func (m *opsMeter) stop(ctx context.Context, nc *nats.Conn) (Ops, error) {
	// Every request the server routed before this round trip has reached the subscriptions.
	if err := nc.Flush(); err != nil {
		return Ops{}, err
	}
	m.unsubscribe()
	m.mu.Lock()
	o := Ops{Stored: map[string]uint64{}, Requests: m.reqs}
	m.mu.Unlock()
	after, err := lastSeqs(ctx, m.js)
	if err != nil {
		return Ops{}, err
	}
	for s, v := range after {
		o.Stored[s] = v - m.before[s]
	}
	return o, nil
}

// lastSeqs returns every stream's last sequence.
func lastSeqs(ctx context.Context, js jetstream.JetStream) (map[string]uint64, error) {
	out := map[string]uint64{}
	l := js.ListStreams(ctx)
	for info := range l.Info() {
		out[info.Config.Name] = info.State.LastSeq
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	return out, nil
}

// write prints the operations per replication, and every count behind them.
func (o Ops) write(w io.Writer, stream string, replications int) {
	per := func(n uint64) float64 { return float64(n) / float64(max(replications, 1)) }
	fmt.Fprintf(w, "  JetStream operations per replication: %.1f = %.1f events stored + %.1f KV writes + %.1f KV reads\n",
		per(o.Total(stream)), per(o.Events(stream)), per(o.KVWrites()), per(o.KVReads()))
	var streams []string
	for s, v := range o.Stored {
		if v > 0 {
			streams = append(streams, s)
		}
	}
	sort.Strings(streams)
	fmt.Fprint(w, "    stored per stream:")
	for _, s := range streams {
		fmt.Fprintf(w, " %s %d (%.1f);", s, o.Stored[s], per(o.Stored[s]))
	}
	fmt.Fprintln(w)
	var kinds []string
	for k, v := range o.Requests {
		if v == 0 {
			continue
		}
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprint(w, "    requests seen on $JS.API.> and $JS.ACK.>:")
	for _, k := range kinds {
		fmt.Fprintf(w, " %s %d (%.1f);", k, o.Requests[k], per(o.Requests[k]))
	}
	fmt.Fprintln(w)
}

// discount removes n requests of kind that the benchmark itself made while measuring.
func (o *Ops) discount(kind string, n int) {
	o.Requests[kind] -= min(o.Requests[kind], uint64(n))
}
