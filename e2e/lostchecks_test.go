package e2e_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// Every copy in flight reaches a terminal state even if every check the poller schedules is
// lost: here each one is purged from the stream as soon as it is written. Only the poller's
// sweep (its wakeups are not deferrals, so they are spared) keeps the copies checked. On
// today's main a lost check left its copy in progress for ever, with no event and no Timeout.
func TestCopiesSettleWhenEveryScheduledCheckIsLost(t *testing.T) {
	const images = 3
	seed, imgs := tencentSeed(images, 1500*time.Millisecond)
	s := startStack(t, seed, stackOptions{Policies: tencentPolicy, SweepEvery: 300 * time.Millisecond})
	ctx := context.Background()
	stream, err := s.env.Bus.JetStream().Stream(ctx, s.env.Bus.Config().Stream)
	if err != nil {
		t.Fatal(err)
	}
	var purged atomic.Int64
	// The purging callback holds mu, and the cleanup takes it before the stack closes the
	// connection, so no purge is still running (and failing) when the test has ended.
	var mu sync.Mutex
	stopped := false
	sub, err := s.env.Conn.Subscribe(bus.SchedulePrefix+"poller.>", func(m *nats.Msg) {
		if n, _ := strconv.Atoi(m.Header.Get(bus.HeaderDeferrals)); n == 0 {
			return // a sweep's wakeup
		}
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(m.Subject)); err != nil {
			t.Errorf("purge %s: %v", m.Subject, err)
			return
		}
		purged.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sub.Unsubscribe()
		mu.Lock()
		stopped = true
		mu.Unlock()
	})
	for _, img := range imgs {
		s.publish(t, img)
	}
	recs := s.waitSettled(t, images*len(tencentRegions), 60*time.Second)
	for _, r := range recs {
		if r.State != domain.StateSucceeded {
			t.Errorf("%s: %s %s %s", r.Key, r.State, r.Code, r.Message)
		}
	}
	if purged.Load() == 0 {
		t.Fatal("no scheduled check was lost; the test proves nothing")
	}
	s.waitEvents(t, events.TypeReplicationSucceeded, images*len(tencentRegions), 10*time.Second)
	t.Logf("%d scheduled checks lost; every copy settled through the sweep", purged.Load())
}
