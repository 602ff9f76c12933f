package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

// record is the part of a replication record (`imagerelay status --json`) the checks read.
type record struct {
	Provider          string `json:"provider"`
	ImageID           string `json:"imageId"`
	DestinationRegion string `json:"destinationRegion"`
	State             string `json:"state"`
	Code              string `json:"code"`
	Percent           int    `json:"percent"`
}

func (r record) settled() bool {
	return r.State == "succeeded" || r.State == "failed" || r.State == "skipped"
}

// busView is what the stream holds for the checks: terminal events per replication and
// completed events per image, by distinct event id.
type busView struct {
	cons      jetstream.Consumer
	terminal  map[string]map[string]string // replication key → event id → type
	completed map[string]map[string]bool   // provider/image → event ids
	dead      int
	deadWhy   map[string]int
}

// report is the outcome of one run.
type report struct {
	records   map[string]record
	bus       *busView
	calls     []emucore.Call
	starts    map[string]int // replication key → accepted provider starts
	chaos     time.Duration
	settle    time.Duration
	wall      time.Duration
	readyErr  error
	recordErr error
}

// waitSettled polls until every expected replication has a settled record and its events are
// on the bus, or settleWithin passes.
func (h *harness) waitSettled(t *testing.T) *report {
	rep := &report{bus: &busView{terminal: map[string]map[string]string{}, completed: map[string]map[string]bool{}, deadWhy: map[string]int{}}}
	rep.readyErr = waitFor(h.sz.settleWithin, 2*time.Second, func() error {
		recs, err := h.records(t.Context())
		if err != nil {
			rep.recordErr = err
			return err
		}
		rep.records = recs
		if err := h.readBus(t.Context(), rep.bus); err != nil {
			return err
		}
		missing, open, lost := 0, 0, 0
		for k := range h.expected {
			r, ok := recs[k]
			switch {
			case !ok:
				missing++
			case !r.settled():
				open++
			case len(rep.bus.terminal[k]) == 0:
				lost++
			}
		}
		if missing+open+lost > 0 {
			return fmt.Errorf("%d replications without a record, %d not settled, %d settled without their event", missing, open, lost)
		}
		for _, img := range h.images {
			if len(rep.bus.completed[img.Provider+"/"+img.ImageID]) == 0 {
				return fmt.Errorf("image %s/%s has no replication.completed yet", img.Provider, img.ImageID)
			}
		}
		return nil
	})
	if rep.readyErr != nil {
		h.note("deadline passed: %v", rep.readyErr)
	} else {
		h.note("every replication settled and every event is on the bus")
	}
	return rep
}

// records reads the replication records with `imagerelay status --json`.
func (h *harness) records(ctx context.Context) (map[string]record, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := h.cli(ctx, "status", "--json")
	if err != nil {
		return nil, err
	}
	var st struct {
		Replications []record `json:"replications"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("status --json: %w", err)
	}
	recs := map[string]record{}
	for _, r := range st.Replications {
		recs[replKey(r.Provider, r.ImageID, r.DestinationRegion)] = r
	}
	return recs, nil
}

// readBus reads what is new on the stream since the last call, with an ordered consumer on
// the terminal and completed events and the dead letters.
func (h *harness) readBus(ctx context.Context, v *busView) error {
	if v.cons == nil {
		cons, err := h.js.OrderedConsumer(ctx, "IMAGERELAY", jetstream.OrderedConsumerConfig{FilterSubjects: []string{
			events.NATSFilter(events.TypeReplicationSucceeded),
			events.NATSFilter(events.TypeReplicationFailed),
			events.NATSFilter(events.TypeReplicationCompleted),
			events.DeadLetterPrefix + ">",
		}})
		if err != nil {
			return fmt.Errorf("ordered consumer: %w", err)
		}
		v.cons = cons
	}
	for {
		batch, err := v.cons.FetchNoWait(500)
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			v.add(m)
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

func (v *busView) add(m jetstream.Msg) {
	if strings.HasPrefix(m.Subject(), events.DeadLetterPrefix) {
		v.dead++
		why := m.Headers().Get("Imagerelay-Dlq-Reason")
		if len(why) > 60 {
			why = why[:60] + "…"
		}
		v.deadWhy[why]++
		return
	}
	e, err := events.FromHeader(m.Headers(), m.Data())
	if err != nil {
		return
	}
	switch e.Type() {
	case events.TypeReplicationSucceeded, events.TypeReplicationFailed:
		var r events.Replication
		if json.Unmarshal(e.Data(), &r) != nil {
			return
		}
		k := replKey(r.Provider, r.ImageID, r.DestinationRegion)
		if v.terminal[k] == nil {
			v.terminal[k] = map[string]string{}
		}
		v.terminal[k][e.ID()] = e.Type()
	case events.TypeReplicationCompleted:
		var c events.Image
		if json.Unmarshal(e.Data(), &c) != nil {
			return
		}
		k := c.Provider + "/" + c.ImageID
		if v.completed[k] == nil {
			v.completed[k] = map[string]bool{}
		}
		v.completed[k][e.ID()] = true
	}
}

// collectCalls reads the emulators' call log and counts accepted starts per replication: an
// "ok" start call, whether or not its answer was lost. An Alibaba call counts once for each
// region of its destination list; RepeatedDistribution answers are refusals, not starts.
func (h *harness) collectCalls(t *testing.T, rep *report) {
	resp, err := http.Get("http://" + h.emuAddrs.Tencent + "/_admin/calls")
	if err != nil {
		t.Fatalf("admin endpoint: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Calls []emucore.Call }
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("admin endpoint: %v", err)
	}
	rep.calls = body.Calls
	rep.starts = map[string]int{}
	for _, c := range body.Calls {
		if startActions[c.Provider] != c.Action || c.Outcome != "ok" {
			continue
		}
		for _, k := range startKeys(c) {
			rep.starts[k]++
		}
	}
}

// startKeys names the replications one accepted start call covers.
func startKeys(c emucore.Call) []string {
	str := func(k string) string { s, _ := c.Params[k].(string); return s }
	list := func(k string) []string {
		var out []string
		vals, _ := c.Params[k].([]any)
		for _, v := range vals {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	var out []string
	switch c.Provider {
	case "tencent":
		for _, id := range list("ImageIds") {
			for _, r := range list("DestinationRegions") {
				out = append(out, replKey("tencent", id, r))
			}
		}
	case "alibaba":
		for _, r := range list("DestinationRegionList") {
			out = append(out, replKey("alibaba", str("ImageId"), r))
		}
	case "huawei":
		out = append(out, replKey("huawei", str("imageId"), str("destinationRegion")))
	}
	return out
}

// report prints the summary table and fails the test on any duplicate start, unsettled
// replication or lost event.
func (h *harness) report(t *testing.T, rep *report) {
	var duplicates, neverStarted, stuck, noRecord, lostTerminal, lostCompleted, doubledTerminal, contradictory int
	var succeeded, failed int
	var problems []string
	keys := make([]string, 0, len(h.expected))
	for k := range h.expected {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r, hasRecord := rep.records[k]
		n := rep.starts[k]
		switch {
		case n > 1:
			duplicates++
			problems = append(problems, fmt.Sprintf("%s: %d accepted provider starts, want 1", k, n))
		case n == 0 && (!hasRecord || r.State != "failed"):
			neverStarted++
			problems = append(problems, fmt.Sprintf("%s: never started at the provider (record: %s)", k, describe(r, hasRecord)))
		}
		switch {
		case !hasRecord:
			noRecord++
			problems = append(problems, k+": no replication record")
			continue
		case !r.settled():
			stuck++
			problems = append(problems, fmt.Sprintf("%s: stuck %s (%d%%), %d accepted starts", k, r.State, r.Percent, n))
			continue
		case r.State == "succeeded":
			succeeded++
		default:
			failed++
		}
		ev := rep.bus.terminal[k]
		types := map[string]bool{}
		for _, typ := range ev {
			types[typ] = true
		}
		switch {
		case len(ev) == 0:
			lostTerminal++
			problems = append(problems, fmt.Sprintf("%s: record %s but no replication.succeeded/failed event on the bus", k, describe(r, true)))
		case len(types) > 1:
			contradictory++
			problems = append(problems, k+": both replication.succeeded and replication.failed on the bus")
		case len(ev) > 1:
			doubledTerminal++
		}
	}
	for _, img := range h.images {
		if len(rep.bus.completed[img.Provider+"/"+img.ImageID]) == 0 {
			lostCompleted++
			problems = append(problems, fmt.Sprintf("%s/%s: no replication.completed on the bus", img.Provider, img.ImageID))
		}
	}
	faults := map[emucore.FaultKind]int{}
	totalFaults := 0
	for _, c := range rep.calls {
		if c.Fault != "" {
			faults[c.Fault]++
			totalFaults++
		}
	}
	var faultParts []string
	for _, k := range emucore.Kinds() {
		faultParts = append(faultParts, fmt.Sprintf("%s %d", k, faults[k]))
	}
	unexpected := 0
	for _, p := range h.workers {
		unexpected += p.unexpectedExits()
	}
	topology := "single nats-server"
	if h.cluster {
		topology = "3-node nats-server cluster, R3"
	}
	startCalls, okStarts := 0, 0
	for _, c := range rep.calls {
		if startActions[c.Provider] == c.Action {
			startCalls++
			if c.Outcome == "ok" {
				okStarts++
			}
		}
	}
	h.mu.Lock()
	rows := [][2]string{
		{"run", fmt.Sprintf("size %s, seed %d, %s", h.sz.name, h.seed, topology)},
		{"images", fmt.Sprintf("%d (tencent %d, alibaba %d, huawei %d); %d duplicate publishes, %d re-sent requests", len(h.images), h.sz.tencent, h.sz.alibaba, h.sz.huawei, h.dupPubs, h.resent)},
		{"replications planned", fmt.Sprint(len(h.expected))},
		{"settled", fmt.Sprintf("%d (succeeded %d, failed %d)", succeeded+failed, succeeded, failed)},
		{"not settled", fmt.Sprintf("%d stuck, %d without a record", stuck, noRecord)},
		{"duplicate starts", fmt.Sprintf("%d replications started more than once; %d never started", duplicates, neverStarted)},
		{"lost events", fmt.Sprintf("%d terminal, %d completed (%d contradictory, %d terminal events doubled under another id)", lostTerminal, lostCompleted, contradictory, doubledTerminal)},
		{"provider calls", fmt.Sprintf("%d, of which start calls %d (%d accepted)", len(rep.calls), startCalls, okStarts)},
		{"faults injected", fmt.Sprintf("%d (%.0f %% of calls): %s", totalFaults, 100*float64(totalFaults)/float64(max(1, len(rep.calls))), strings.Join(faultParts, ", "))},
		{"kills", fmt.Sprintf("%d worker kill -9, %d NATS kill -9; %d worker exits not caused by the test", h.workerKill, h.natsKill, unexpected)},
		{"dead letters", deadLetters(rep.bus)},
		{"wall time", fmt.Sprintf("%s (chaos phase %s, settling %s)", rep.wall.Round(time.Second), rep.chaos.Round(time.Second), rep.settle.Round(time.Second))},
	}
	timeline := slices.Clone(h.timeline)
	h.mu.Unlock()
	var b strings.Builder
	b.WriteString("\nchaos summary\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "  %-22s %s\n", r[0], r[1])
	}
	b.WriteString("timeline\n")
	for _, l := range timeline {
		b.WriteString("  " + l + "\n")
	}
	t.Log(b.String())
	if rep.recordErr != nil && rep.records == nil {
		t.Errorf("could not read the replication records: %v", rep.recordErr)
	}
	if len(problems) > 0 {
		const show = 40
		more := ""
		if len(problems) > show {
			more = fmt.Sprintf("\n  … and %d more", len(problems)-show)
			problems = problems[:show]
		}
		t.Errorf("%d duplicate starts, %d never started, %d not settled, %d without a record, %d terminal events lost, %d completed events lost, %d contradictory:\n  %s%s",
			duplicates, neverStarted, stuck, noRecord, lostTerminal, lostCompleted, contradictory, strings.Join(problems, "\n  "), more)
		h.explain(t, rep, problems)
	}
}

// explain logs, for the images the problems name (at most five), every provider call that
// names them and every worker log line that mentions them: what a failed run needs to be
// understood after its temporary directory is gone.
func (h *harness) explain(t *testing.T, rep *report, problems []string) {
	var images []string
	for _, p := range problems {
		parts := strings.SplitN(p, "/", 3)
		if len(parts) < 2 {
			continue
		}
		img := strings.SplitN(parts[1], ":", 2)[0]
		if !slices.Contains(images, img) {
			images = append(images, img)
		}
	}
	for _, img := range images[:min(len(images), 5)] {
		var b strings.Builder
		fmt.Fprintf(&b, "--- what happened to %s\n", img)
		for _, c := range rep.calls {
			raw, _ := json.Marshal(c.Params)
			if strings.Contains(string(raw), img) {
				fmt.Fprintf(&b, "  call %s %s %s %s outcome=%s fault=%s http=%d\n", c.Time.Format("15:04:05.000"), c.Provider, c.Action, raw, c.Outcome, c.Fault, c.HTTPStatus)
			}
		}
		for _, p := range h.workers {
			for _, line := range strings.Split(p.output(), "\n") {
				if strings.Contains(line, img) {
					fmt.Fprintf(&b, "  %s: %s\n", p.name, line)
				}
			}
		}
		t.Log(b.String())
	}
}

func describe(r record, ok bool) string {
	if !ok {
		return "none"
	}
	if r.Code != "" {
		return r.State + " " + r.Code
	}
	return r.State
}

// deadLetters summarises the dead letters by reason, most frequent first.
func deadLetters(v *busView) string {
	if v.dead == 0 {
		return "0"
	}
	reasons := make([]string, 0, len(v.deadWhy))
	for why := range v.deadWhy {
		reasons = append(reasons, why)
	}
	sort.Slice(reasons, func(i, j int) bool { return v.deadWhy[reasons[i]] > v.deadWhy[reasons[j]] })
	parts := make([]string, 0, len(reasons))
	for _, why := range reasons {
		parts = append(parts, fmt.Sprintf("%d× %q", v.deadWhy[why], why))
	}
	return fmt.Sprintf("%d: %s", v.dead, strings.Join(parts, "; "))
}
