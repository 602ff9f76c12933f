package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/alibaba"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/core/policy"
	"github.com/imagerelay/imagerelay/shared/dev/testenv"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// knownOpen lists the corpus items that fail today because their fix lives outside the
// events package, with the reason. They are replayed like every other item; the test fails
// when one of them starts to pass, so that it is taken off this list. Empty it as the fixes
// land.
var knownOpen = map[string]string{}

// badItem is one file of testdata/badinput: the messages to publish and what must become of
// them. See testdata/badinput/README.md.
type badItem struct {
	Name        string       `json:"-"`
	Description string       `json:"description"`
	Messages    []badMessage `json:"messages"`
	Expect      badExpect    `json:"expect"`
	// AfterRecord, when set, holds the item back until a replication record of this image
	// exists (a forged event aimed at a real copy).
	AfterRecord string `json:"afterRecord,omitempty"`
}

// badMessage is one NATS message: subject, headers and a payload given as JSON, as text, or
// as parts repeated to build very large or very deep payloads.
type badMessage struct {
	Subject     string            `json:"subject"`
	Headers     map[string]string `json:"headers"`
	Payload     json.RawMessage   `json:"payload,omitempty"`
	PayloadText *string           `json:"payloadText,omitempty"`
	Parts       []struct {
		Text  string `json:"text"`
		Times int    `json:"times"`
	} `json:"payloadParts,omitempty"`
	// HeaderFill adds Count headers ce-x000, ce-x001, ... of Bytes bytes each.
	HeaderFill *struct {
		Count int `json:"count"`
		Bytes int `json:"bytes"`
	} `json:"headerFill,omitempty"`
}

// badExpect is the expected outcome of an item.
type badExpect struct {
	// Outcome is "dead-lettered", "handled" or "refused" (the server or client refuses the
	// publish; nothing is stored).
	Outcome string `json:"outcome"`
	// Function and Reason: the dead letter is on imagerelay.dlq.<Function> and its reason
	// contains every string of Reason.
	Function string   `json:"function,omitempty"`
	Reason   []string `json:"reason,omitempty"`
	// Planned are image ids for which replication.planned must be on the bus.
	Planned []string `json:"planned,omitempty"`
	// Failed maps image ids to a string the code of each of their replications must contain.
	Failed map[string]string `json:"failed,omitempty"`
	// Refused is a string the publish error must contain.
	Refused string `json:"refused,omitempty"`
}

func (m badMessage) payload() []byte {
	switch {
	case m.PayloadText != nil:
		return []byte(*m.PayloadText)
	case len(m.Parts) > 0:
		var b strings.Builder
		for _, p := range m.Parts {
			b.WriteString(strings.Repeat(p.Text, max(p.Times, 1)))
		}
		return []byte(b.String())
	}
	return m.Payload
}

func loadBadItems(t *testing.T) []badItem {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "badinput", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in testdata/badinput: %v", err)
	}
	var items []badItem
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var it badItem
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&it); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		it.Name = strings.TrimSuffix(filepath.Base(f), ".json")
		switch it.Expect.Outcome {
		case "dead-lettered":
			if it.Expect.Function == "" || len(it.Expect.Reason) == 0 {
				t.Fatalf("%s: a dead-lettered item names the function and the reason", f)
			}
		case "handled", "refused":
		default:
			t.Fatalf("%s: unknown outcome %q", f, it.Expect.Outcome)
		}
		if len(it.Messages) == 0 || it.Description == "" {
			t.Fatalf("%s: no messages or no description", f)
		}
		items = append(items, it)
	}
	for name := range knownOpen {
		if !slices.ContainsFunc(items, func(it badItem) bool { return it.Name == name }) {
			t.Fatalf("knownOpen names %q, which is not in the corpus", name)
		}
	}
	return items
}

// itemHeader marks every message of an item, so its dead letter can be found.
const itemHeader = "Badinput-Item"

// TestBadInputCorpus replays testdata/badinput against running workers: each item is
// dead-lettered with a reason that names the field, or handled correctly; the workers stay
// alive, and control images published before and after the corpus settle.
func TestBadInputCorpus(t *testing.T) {
	items := loadBadItems(t)
	seed, imgs := tencentSeed(10, 300*time.Millisecond)
	rebuildPolicy := config.DefaultRebuildPolicy()
	rebuildPolicy.Name = "forged-guard"
	rebuildPolicy.Match = policy.Match{Provider: "alibaba"}
	rebuildPolicy.Regions = []string{"cn-hangzhou"}
	s := startStack(t, seed, stackOptions{
		Policies: append(slices.Clone(tencentPolicy),
			config.ReplicationPolicy{Name: "alibaba-desk", Match: policy.Match{Provider: "alibaba"}, Regions: []string{"cn-hangzhou"}}),
		Rebuilds: []config.RebuildPolicy{rebuildPolicy},
	})
	// Alibaba reads its keys per call: from here on it has none, so the corpus's Alibaba
	// image meets a provider without credentials.
	t.Setenv(alibaba.EnvAccessKeyID, "")
	t.Setenv(alibaba.EnvAccessKeySecret, "")

	var mu sync.Mutex
	dead := map[string][]*nats.Msg{} // by item name or ce-id
	sub, err := s.env.Conn.Subscribe(events.DeadLetterPrefix+">", func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range []string{m.Header.Get(itemHeader), m.Header.Get("ce-id")} {
			if k != "" {
				dead[k] = append(dead[k], m)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := s.env.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
	deadFor := func(it badItem) []*nats.Msg {
		mu.Lock()
		defer mu.Unlock()
		out := slices.Clone(dead[it.Name])
		for _, m := range it.Messages {
			if id := m.Headers["ce-id"]; id != "" {
				for _, d := range dead[id] {
					if !slices.Contains(out, d) {
						out = append(out, d)
					}
				}
			}
		}
		return out
	}

	s.publish(t, imgs[0]) // control before
	js, err := jetstream.New(s.env.Conn)
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]error{}
	publish := func(it badItem) {
		for _, m := range it.Messages {
			msg := nats.NewMsg(m.Subject)
			for k, v := range m.Headers {
				msg.Header.Set(k, v)
			}
			if f := m.HeaderFill; f != nil {
				for i := range f.Count {
					msg.Header.Set(fmt.Sprintf("ce-x%03d", i), strings.Repeat("y", f.Bytes))
				}
			}
			msg.Header.Set(itemHeader, it.Name)
			msg.Data = m.payload()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := js.PublishMsg(ctx, msg)
			cancel()
			if err != nil {
				refused[it.Name] = errors.Join(refused[it.Name], err)
			}
		}
	}
	for _, it := range items {
		if it.AfterRecord == "" {
			publish(it)
		}
	}
	for _, it := range items {
		if it.AfterRecord == "" {
			continue
		}
		testenv.Eventually(t, 30*time.Second, func() error {
			recs, err := s.rt.Store.Records(context.Background())
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(recs, func(r domain.Record) bool { return r.ImageID == it.AfterRecord }) {
				return fmt.Errorf("%s waits for a replication record of %s", it.Name, it.AfterRecord)
			}
			return nil
		})
		publish(it)
	}
	s.publish(t, imgs[1]) // control after

	check := func(it badItem) error {
		e := it.Expect
		if e.Outcome == "refused" {
			err := refused[it.Name]
			if err == nil {
				return fmt.Errorf("the publish was accepted, want an error containing %q", e.Refused)
			}
			if !strings.Contains(err.Error(), e.Refused) {
				return fmt.Errorf("publish error %w, want one containing %q", err, e.Refused)
			}
			return nil
		}
		if err := refused[it.Name]; err != nil {
			return fmt.Errorf("the publish was refused: %w", err)
		}
		dls := deadFor(it)
		if e.Outcome == "dead-lettered" {
			for _, d := range dls {
				reason := d.Header.Get("Imagerelay-Dlq-Reason")
				if d.Subject == events.DeadLetterSubject(e.Function) && !slices.ContainsFunc(e.Reason, func(w string) bool { return !strings.Contains(reason, w) }) {
					return nil
				}
			}
			var got []string
			for _, d := range dls {
				got = append(got, d.Subject+": "+d.Header.Get("Imagerelay-Dlq-Reason"))
			}
			return fmt.Errorf("no dead letter on %s with a reason containing %q; got %q", events.DeadLetterSubject(e.Function), e.Reason, got)
		}
		if len(dls) > 0 {
			return fmt.Errorf("dead-lettered on %s: %s", dls[0].Subject, dls[0].Header.Get("Imagerelay-Dlq-Reason"))
		}
		for _, id := range e.Planned {
			if !slices.ContainsFunc(s.rec.OfType(events.TypeReplicationPlanned), func(ev event.Event) bool {
				d, err := events.DataAs[events.ReplicationPlanned](ev)
				return err == nil && d.ImageID == id
			}) {
				return fmt.Errorf("no replication.planned for %s", id)
			}
		}
		if len(e.Failed) > 0 {
			recs, err := s.rt.Store.Records(context.Background())
			if err != nil {
				return err
			}
			for id, code := range e.Failed {
				n := 0
				for _, r := range recs {
					if r.ImageID != id {
						continue
					}
					n++
					if r.State != domain.StateFailed || !strings.Contains(r.Code, code) {
						return fmt.Errorf("%s is %s with code %q, want failed with a code containing %q", r.Key, r.State, r.Code, code)
					}
				}
				if n == 0 {
					return fmt.Errorf("no replication of %s recorded", id)
				}
			}
		}
		return nil
	}

	// Wait for the controls and every item that should pass; the known open ones are
	// judged once the rest has settled.
	controls := []string{imgs[0].ImageID, imgs[1].ImageID}
	testenv.Eventually(t, 90*time.Second, func() error {
		recs, err := s.rt.Store.Records(context.Background())
		if err != nil {
			return err
		}
		var open []string
		for _, id := range controls {
			n := 0
			for _, r := range recs {
				if r.ImageID != id {
					continue
				}
				if r.State != domain.StateSucceeded {
					open = append(open, fmt.Sprintf("control %s is %s (%s %s)", r.Key, r.State, r.Code, r.Message))
				}
				n++
			}
			if n != len(tencentRegions) {
				open = append(open, fmt.Sprintf("control %s: %d of %d copies recorded", id, n, len(tencentRegions)))
			}
		}
		for _, it := range items {
			if _, known := knownOpen[it.Name]; known {
				continue
			}
			if err := check(it); err != nil {
				open = append(open, it.Name+": "+err.Error())
			}
		}
		if len(open) > 0 {
			return fmt.Errorf("%d not as expected:\n%s", len(open), strings.Join(open, "\n"))
		}
		return nil
	})
	for _, it := range items {
		why, known := knownOpen[it.Name]
		if !known {
			continue
		}
		if err := check(it); err != nil {
			t.Logf("known open %s (%s): %v", it.Name, why, err)
		} else {
			t.Errorf("%s passes now: take it off knownOpen", it.Name)
		}
	}
}
