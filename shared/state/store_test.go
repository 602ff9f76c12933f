package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/shared/natsembed"
	"github.com/nats-io/nats.go/jetstream"
)

// openStore starts an embedded JetStream and opens a bucket on it.
func openStore(t *testing.T) *Store {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close(); srv.Shutdown() })
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), js, "test", 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type counter struct{ N int }

func TestCreateIsAClaimAndUpdateIsCompareAndSwap(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	if _, err := Create(ctx, s, "c/1", counter{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, s, "c/1", counter{N: 9}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	// 20 writers increment concurrently: compare-and-swap retries make every one count.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Update(ctx, s, "c/1", func(c *counter) error { c.N++; return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _, err := Get[counter](ctx, s, "c/1")
	if err != nil || got.N != 20 {
		t.Fatalf("counter %d (%v), want 20", got.N, err)
	}
	// ErrNoChange leaves the record and its revision alone.
	_, rev, _ := Get[counter](ctx, s, "c/1")
	if _, err := Update(ctx, s, "c/1", func(*counter) error { return ErrNoChange }); err != nil {
		t.Fatal(err)
	}
	if _, rev2, _ := Get[counter](ctx, s, "c/1"); rev2 != rev {
		t.Errorf("revision moved from %d to %d on ErrNoChange", rev, rev2)
	}
	if _, err := Update(ctx, s, "c/missing", func(*counter) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of a missing record: %v, want ErrNotFound", err)
	}
}

func TestListMatchesPrefixOnly(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	for _, k := range []string{"repl/a/1", "repl/b/2", "plan/a", "replx/c"} {
		if _, err := Create(ctx, s, k, counter{N: len(k)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := List[counter](ctx, s, "repl/")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("listed %d records under repl/, want 2", len(got))
	}
}

func TestKeyReplacesCharactersAKeyCannotHold(t *testing.T) {
	if got := Key("repl", "tencent/default/img 1*>/-/ap.x"); got != "repl/tencent/default/img_1__/-/ap_x" {
		t.Errorf("Key = %q", got)
	}
}

func TestSemaphoreLimitsHoldersAndRecoversExpiredLeases(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	clock := time.Now()
	now = func() time.Time { return clock }
	t.Cleanup(func() { now = time.Now })

	for i := range 5 {
		ok, err := s.Acquire(ctx, "huawei/default", fmt.Sprintf("copy-%d", i), 5, time.Minute)
		if err != nil || !ok {
			t.Fatalf("acquire %d: %v %v", i, ok, err)
		}
	}
	if ok, _ := s.Acquire(ctx, "huawei/default", "copy-5", 5, time.Minute); ok {
		t.Fatal("a sixth holder got a slot")
	}
	// Acquiring again as a holder is idempotent (a redelivered request keeps its slot).
	if ok, _ := s.Acquire(ctx, "huawei/default", "copy-0", 5, time.Minute); !ok {
		t.Fatal("an existing holder lost its slot on a repeated acquire")
	}
	// Releasing frees a slot at once.
	if err := s.Release(ctx, "huawei/default", "copy-1"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Acquire(ctx, "huawei/default", "copy-5", 5, time.Minute); !ok {
		t.Fatal("no slot after a release")
	}
	// A crashed holder is never released: its lease runs out. Renewed holders keep theirs.
	clock = clock.Add(50 * time.Second)
	for _, h := range []string{"copy-0", "copy-2", "copy-3", "copy-5"} {
		if err := s.Renew(ctx, "huawei/default", h, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(30 * time.Second) // copy-4's lease (1 min) has run out; the renewed ones have not
	if ok, _ := s.Acquire(ctx, "huawei/default", "copy-6", 5, time.Minute); !ok {
		t.Fatal("an expired lease did not free its slot")
	}
	if ok, _ := s.Acquire(ctx, "huawei/default", "copy-7", 5, time.Minute); ok {
		t.Fatal("more than five holders")
	}
	holders, err := s.Holders(ctx, "huawei/default")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := holders["copy-4"]; ok || len(holders) != 5 {
		t.Errorf("holders %v: want five, without the expired copy-4", holders)
	}
}
