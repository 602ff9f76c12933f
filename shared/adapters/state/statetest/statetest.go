// Package statetest is the conformance suite of the state.Bucket port: one set of tests that
// every implementation must pass (the JetStream bucket of package natskv, the in-memory one of
// package memkv), run through state.Store so that it checks what the cores rely on — claims,
// compare-and-swap under contention, listings filtered on whole key tokens, semaphores,
// migrations — and not only the port's methods. It is the pattern of Watermill's pub/sub tests.
package statetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// Run runs the suite; newBucket returns a new, empty bucket for each test.
func Run(t *testing.T, newBucket func(t *testing.T) state.Bucket) {
	tests := []struct {
		name string
		test func(t *testing.T, s *state.Store)
	}{
		{"BucketRevisionsAndErrors", testBucketRevisionsAndErrors},
		{"CreateIsAClaimAndUpdateIsCompareAndSwap", testCreateIsAClaimAndUpdateIsCompareAndSwap},
		{"ListMatchesWholeTokensOnly", testListMatchesWholeTokensOnly},
		{"ListTranslatesLegacyPrefixes", testListTranslatesLegacyPrefixes},
		{"DistinctPartsGetDistinctRecords", testDistinctPartsGetDistinctRecords},
		{"TableAddressesRecordsByParts", testTableAddressesRecordsByParts},
		{"MigrateLegacyKeys", testMigrateLegacyKeys},
		{"SemaphoreLimitsHoldersAndRecoversExpiredLeases", testSemaphoreLimitsHoldersAndRecoversExpiredLeases},
		{"UpdateFromAHeldRevision", testUpdateFromAHeldRevision},
		{"SettleCompletesOnceUnderContention", testSettleCompletesOnceUnderContention},
		{"SettleRecoversFromAStaleRecentPlan", testSettleRecoversFromAStaleRecentPlan},
		{"SettleOfAPlanStoredByAnEarlierVersionReadsTheRecords", testSettleOfALegacyPlanReadsTheRecords},
		{"RecordsOfImageIDListsOnlyThatImage", testRecordsOfImageIDListsOnlyThatImage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, state.New(newBucket(t))) })
	}
}

type counter struct{ N int }

// testBucketRevisionsAndErrors checks the port itself: every write a new revision, the
// sentinel errors the store relies on, and deletes that make a key free to claim again.
func testBucketRevisionsAndErrors(t *testing.T, s *state.Store) {
	ctx := context.Background()
	b := s.Bucket()
	if _, _, err := b.Get(ctx, "k.1"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	r1, err := b.Create(ctx, "k.1", []byte(`1`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "k.1", []byte(`2`)); !errors.Is(err, state.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	r2, err := b.Update(ctx, "k.1", []byte(`2`), r1)
	if err != nil || r2 <= r1 {
		t.Fatalf("Update at the current revision: rev %d (%v), want > %d", r2, err, r1)
	}
	if _, err := b.Update(ctx, "k.1", []byte(`3`), r1); !errors.Is(err, state.ErrRevisionMismatch) {
		t.Fatalf("Update at a stale revision: %v, want ErrRevisionMismatch", err)
	}
	if v, rev, err := b.Get(ctx, "k.1"); err != nil || string(v) != "2" || rev != r2 {
		t.Fatalf("Get = %s rev %d (%v), want 2 at rev %d", v, rev, err, r2)
	}
	if err := b.Delete(ctx, "k.1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "k.1"); err != nil {
		t.Fatalf("Delete of a missing key: %v, want nil", err)
	}
	if _, _, err := b.Get(ctx, "k.1"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if _, err := b.Update(ctx, "k.1", []byte(`4`), r2); !errors.Is(err, state.ErrRevisionMismatch) {
		t.Fatalf("Update of a deleted key: %v, want ErrRevisionMismatch", err)
	}
	if _, err := b.Create(ctx, "k.1", []byte(`5`)); err != nil {
		t.Fatalf("Create after Delete: %v, want the key free to claim again", err)
	}
	var listed []string
	if err := b.List(ctx, "k.*", func(key string, v []byte) error { listed = append(listed, key+"="+string(v)); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(listed, []string{"k.1=5"}) {
		t.Fatalf("List(k.*) = %v, want [k.1=5]", listed)
	}
	stop := errors.New("stop")
	if err := b.List(ctx, ">", func(string, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("List did not return fn's error: %v", err)
	}
}

func testTableAddressesRecordsByParts(t *testing.T, s *state.Store) {
	ctx := context.Background()
	tab := state.NewTable[counter](s)
	if _, err := tab.Get(ctx, "a", "b.c"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("Get of a missing record: %v, want domain.ErrNotFound", err)
	}
	if err := tab.Create(ctx, counter{N: 1}, "a", "b.c"); err != nil {
		t.Fatal(err)
	}
	if err := tab.Create(ctx, counter{N: 2}, "a", "b.c"); !errors.Is(err, domain.ErrExists) {
		t.Fatalf("second Create: %v, want domain.ErrExists", err)
	}
	// "b.c" is one part: it must not be the record of the parts "b", "c".
	if err := tab.Create(ctx, counter{N: 3}, "a", "b", "c"); err != nil {
		t.Fatalf("parts a/b/c collide with a/\"b.c\": %v", err)
	}
	got, err := tab.Update(ctx, func(c *counter) error { c.N += 10; return nil }, "a", "b.c")
	if err != nil || got.N != 11 {
		t.Fatalf("Update = %+v (%v), want N 11", got, err)
	}
	if _, err := tab.Update(ctx, func(*counter) error { return domain.ErrNoChange }, "a", "b.c"); err != nil {
		t.Fatalf("Update returning ErrNoChange: %v", err)
	}
	all, err := tab.List(ctx, "a")
	if err != nil || len(all) != 2 {
		t.Fatalf("List(a) = %v (%v), want both records", all, err)
	}
	if only, err := tab.List(ctx, "a", "b"); err != nil || len(only) != 1 || only[0].N != 3 {
		t.Fatalf("List(a, b) = %v (%v), want the one record under a.b", only, err)
	}
}

func testCreateIsAClaimAndUpdateIsCompareAndSwap(t *testing.T, s *state.Store) {
	ctx := context.Background()
	if _, err := state.Create(ctx, s, "c.1", counter{}); err != nil {
		t.Fatal(err)
	}
	if _, err := state.Create(ctx, s, "c.1", counter{N: 9}); !errors.Is(err, state.ErrExists) {
		t.Fatalf("second Create: %v, want state.ErrExists", err)
	}
	// 20 writers increment concurrently: compare-and-swap retries make every one count.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := state.Update(ctx, s, "c.1", func(c *counter) error { c.N++; return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _, err := state.Get[counter](ctx, s, "c.1")
	if err != nil || got.N != 20 {
		t.Fatalf("counter %d (%v), want 20", got.N, err)
	}
	// state.ErrNoChange leaves the record and its revision alone.
	_, rev, _ := state.Get[counter](ctx, s, "c.1")
	if _, err := state.Update(ctx, s, "c.1", func(*counter) error { return state.ErrNoChange }); err != nil {
		t.Fatal(err)
	}
	if _, rev2, _ := state.Get[counter](ctx, s, "c.1"); rev2 != rev {
		t.Errorf("revision moved from %d to %d on state.ErrNoChange", rev, rev2)
	}
	if _, err := state.Update(ctx, s, "c.missing", func(*counter) error { return nil }); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("update of a missing record: %v, want state.ErrNotFound", err)
	}
}

func testListMatchesWholeTokensOnly(t *testing.T, s *state.Store) {
	ctx := context.Background()
	for _, k := range []string{state.Key("repl", "a", "1"), state.Key("repl", "b", "2"), state.Key("plan", "a"), state.Key("replx", "c"), state.Key("repl")} {
		if _, err := state.Create(ctx, s, k, counter{N: len(k)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, state.Key("repl", "b", "2")); err != nil {
		t.Fatal(err)
	}
	got, err := state.List[counter](ctx, s, state.Prefix("repl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].N != len(state.Key("repl", "a", "1")) {
		t.Fatalf("listed %v under repl.>, want only the live repl.a.1", got)
	}
	if all, err := state.List[counter](ctx, s, state.Prefix()); err != nil || len(all) != 4 {
		t.Fatalf("listed %d records under >, want 4 (%v)", len(all), err)
	}
}

// The rebuild function still lists with the prefixes it wrote for the '/' keys; they must find
// the same records under the current keys.
func testListTranslatesLegacyPrefixes(t *testing.T, s *state.Store) {
	ctx := context.Background()
	img := domain.Image{Provider: "alibaba", ImageID: "imgc-1", VersionID: "iv-1", SourceRegion: "cn-shanghai"}
	for _, region := range []string{"cn-beijing", "cn-hangzhou"} {
		r := domain.Copy{Image: img, DestinationRegion: region}
		if err := s.CreateRecord(ctx, domain.Record{Key: r.Key(), Copy: r}); err != nil {
			t.Fatal(err)
		}
	}
	other := domain.Copy{Image: domain.Image{Provider: "alibaba", ImageID: "imgc-10"}, DestinationRegion: "cn-beijing"}
	if err := s.CreateRecord(ctx, domain.Record{Key: other.Key(), Copy: other}); err != nil {
		t.Fatal(err)
	}
	rollout := state.Key("rebuild", "rollout", "office", domain.Copy{Image: img, DestinationRegion: "cn-beijing"}.Key())
	if _, err := state.Create(ctx, s, rollout, counter{N: 1}); err != nil {
		t.Fatal(err)
	}
	// The filters functions/rebuild lists with.
	recs, err := state.List[domain.Record](ctx, s, state.RecordsOfImage(img))
	if err != nil || len(recs) != 2 {
		t.Fatalf("image filter listed %d records (%v), want the two of imgc-1 (not imgc-10)", len(recs), err)
	}
	if ro, err := state.List[counter](ctx, s, state.Prefix("rebuild", "rollout")); err != nil || len(ro) != 1 {
		t.Fatalf("rollout filter listed %d (%v), want 1", len(ro), err)
	}
}

// Keys used to fold every character outside [A-Za-z0-9-_=/] to '_': "img-bad.0032" and
// "img-bad_0032" shared one record, and so did accounts that differ in a folded character.
func testDistinctPartsGetDistinctRecords(t *testing.T, s *state.Store) {
	ctx := context.Background()
	base := domain.Image{Provider: "tencent", SourceRegion: "ap-guangzhou", ImageID: "img-bad.0032"}
	variants := []domain.Image{base}
	for _, mut := range []func(*domain.Image){
		func(i *domain.Image) { i.ImageID = "img-bad_0032" },
		func(i *domain.Image) { i.ImageID = "img-bad/0032" },
		func(i *domain.Image) { i.Account = "acme.cn" },
		func(i *domain.Image) { i.Account = "acme_cn" },
		func(i *domain.Image) { i.Account = "acme cn" },
		func(i *domain.Image) { i.Account = "acmé" },
		func(i *domain.Image) { i.VersionID = "v1.0" },
		func(i *domain.Image) { i.VersionID = "v1_0" },
	} {
		v := base
		mut(&v)
		variants = append(variants, v)
	}
	for _, img := range variants {
		r := domain.Copy{Image: img, DestinationRegion: "ap-shanghai"}
		if err := s.CreateRecord(ctx, domain.Record{Key: r.Key(), Copy: r, State: domain.StateRequested}); err != nil {
			t.Fatalf("record of %+v: %v (it collides with another)", img, err)
		}
		if err := s.SavePlan(ctx, domain.Plan{Image: img, Regions: []string{"ap-shanghai"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, img := range variants {
		r := domain.Copy{Image: img, DestinationRegion: "ap-shanghai"}
		rec, err := s.Record(ctx, r)
		if err != nil || rec.Copy != r {
			t.Errorf("record of %+v reads back %+v (%v)", img, rec.Copy, err)
		}
		if p, err := s.Plan(ctx, img); err != nil || p.Image != img {
			t.Errorf("plan of %+v reads back %+v (%v)", img, p.Image, err)
		}
	}
	recs, err := s.Records(ctx)
	if err != nil || len(recs) != len(variants) {
		t.Fatalf("Records = %d (%v), want %d distinct records", len(recs), err, len(variants))
	}
}

func testMigrateLegacyKeys(t *testing.T, s *state.Store) {
	ctx := context.Background()
	put := func(key string, v any) {
		t.Helper()
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Bucket().Create(ctx, key, raw); err != nil {
			t.Fatal(err)
		}
	}
	img := domain.Image{Provider: "tencent", ImageID: "img-bad.0032", SourceRegion: "ap-guangzhou"}
	inFlight := domain.Copy{Image: img, DestinationRegion: "ap-shanghai"}
	rewritten := domain.Copy{Image: img, DestinationRegion: "ap-beijing"}
	// What an earlier version left: folded '/' keys.
	put("repl/tencent/default/img-bad_0032/-/ap-shanghai", domain.Record{Key: inFlight.Key(), Copy: inFlight,
		State: domain.StateInProgress, TaskID: "img-copy1"})
	put("repl/tencent/default/img-bad_0032/-/ap-beijing", domain.Record{Key: rewritten.Key(), Copy: rewritten,
		State: domain.StateRequested})
	put("plan/tencent/default/img-bad_0032/-", domain.Plan{Image: img, Regions: []string{"ap-shanghai", "ap-beijing"}})
	put("sem/huawei/default", map[string]map[string]time.Time{"holders": {"huawei/default/img-h/-/cn-east-3": time.Now().Add(time.Hour)}})
	put("rebuild/rollout/office/x", counter{N: 1})
	// The current version already wrote one of them under its new key: that one wins.
	if err := s.CreateRecord(ctx, domain.Record{Key: rewritten.Key(), Copy: rewritten,
		State: domain.StateInProgress, TaskID: "img-new"}); err != nil {
		t.Fatal(err)
	}

	moved, err := s.MigrateLegacyKeys(ctx)
	if err != nil || moved != 4 {
		t.Fatalf("MigrateLegacyKeys = %d, %v; want 4 moved", moved, err)
	}
	if rec, err := s.Record(ctx, inFlight); err != nil || rec.TaskID != "img-copy1" || rec.State != domain.StateInProgress {
		t.Errorf("migrated record %+v (%v)", rec, err)
	}
	if rec, err := s.Record(ctx, rewritten); err != nil || rec.TaskID != "img-new" {
		t.Errorf("record written by the current version was replaced: %+v (%v)", rec, err)
	}
	if p, err := s.Plan(ctx, img); err != nil || len(p.Regions) != 2 {
		t.Errorf("migrated plan %+v (%v)", p, err)
	}
	if h, err := s.Holders(ctx, "huawei/default"); err != nil || len(h) != 1 {
		t.Errorf("migrated semaphore holders %v (%v)", h, err)
	}
	for _, old := range []string{"repl/tencent/default/img-bad_0032/-/ap-shanghai", "repl/tencent/default/img-bad_0032/-/ap-beijing", "plan/tencent/default/img-bad_0032/-", "sem/huawei/default"} {
		if _, _, err := s.Bucket().Get(ctx, old); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("legacy key %s is still there (%v)", old, err)
		}
	}
	if _, _, err := s.Bucket().Get(ctx, "rebuild/rollout/office/x"); err != nil {
		t.Errorf("a legacy key the migration does not own was touched: %v", err)
	}
	if recs, err := s.Records(ctx); err != nil || len(recs) != 2 {
		t.Errorf("Records after migration = %d (%v), want 2", len(recs), err)
	}
	if again, err := s.MigrateLegacyKeys(ctx); err != nil || again != 0 {
		t.Errorf("second migration moved %d (%v), want 0", again, err)
	}
}

func testSemaphoreLimitsHoldersAndRecoversExpiredLeases(t *testing.T, s *state.Store) {
	ctx := context.Background()
	clock := time.Now()
	s = s.WithClock(func() time.Time { return clock })

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
	// A refused holder waits in line; a release frees a slot at once and names the oldest
	// waiter, once.
	if ok, _ := s.Acquire(ctx, "huawei/default", "copy-6", 5, time.Minute); ok {
		t.Fatal("a seventh holder got a slot")
	}
	if ok, _ := s.Acquire(ctx, "huawei/default", "copy-5", 5, time.Minute); ok {
		t.Fatal("the sixth holder got a slot on asking again")
	}
	next, err := s.Release(ctx, "huawei/default", "copy-1")
	if err != nil || next != "copy-5" {
		t.Fatalf("release: next waiter %q (%v), want copy-5, the oldest", next, err)
	}
	if again, _ := s.Release(ctx, "huawei/default", "copy-1"); again != "" {
		t.Fatalf("releasing a slot not held woke %q", again)
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

// testUpdateFromAHeldRevision checks the write without a read: from a revision still
// current it is one compare-and-swap; from a stale one it applies the change to the record as
// it is now, so no writer's change is lost.
func testUpdateFromAHeldRevision(t *testing.T, s *state.Store) {
	ctx := context.Background()
	c := domain.Copy{Image: domain.Image{Provider: "tencent", ImageID: "img-held", SourceRegion: "ap-guangzhou"}, DestinationRegion: "ap-beijing"}
	rec := domain.Record{Key: c.Key(), Copy: c, State: domain.StateStarting, StartCalls: 1}
	rev, err := s.CreateRecordRevision(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRecordRevision(ctx, rec); !errors.Is(err, state.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists: a create is a claim", err)
	}
	got, rev2, err := s.UpdateRecordFrom(ctx, rec, rev, func(r *domain.Record) error { r.Polls++; return nil })
	if err != nil || got.Polls != 1 || rev2 <= rev {
		t.Fatalf("update from the created revision = %d polls at rev %d (%v), want 1 at > %d", got.Polls, rev2, err, rev)
	}
	if read, readRev, err := s.RecordRevision(ctx, c); err != nil || read.Polls != 1 || readRev != rev2 {
		t.Fatalf("read back %d polls at rev %d (%v), want 1 at %d", read.Polls, readRev, err, rev2)
	}
	// Held at rev, which is stale now: the change is applied to the stored record (Polls 1).
	calls := 0
	got, _, err = s.UpdateRecordFrom(ctx, rec, rev, func(r *domain.Record) error { calls++; r.Polls += 10; return nil })
	if err != nil || got.Polls != 11 || calls != 2 {
		t.Fatalf("update from a stale revision = %d polls after %d tries (%v), want 11 after 2", got.Polls, calls, err)
	}
	if _, _, err := s.UpdateRecordFrom(ctx, rec, 0, func(*domain.Record) error { return domain.ErrNoChange }); err != nil {
		t.Fatalf("update returning ErrNoChange: %v", err)
	}
	gone := domain.Copy{Image: c.Image, DestinationRegion: "nowhere"}
	if _, _, err := s.UpdateRecordFrom(ctx, domain.Record{Copy: gone}, 1, func(r *domain.Record) error { r.Polls++; return nil }); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("update of a missing record: %v, want ErrNotFound", err)
	}
}

func settledRecord(img domain.Image, region string, st domain.State) domain.Record {
	c := domain.Copy{Image: img, DestinationRegion: region}
	return domain.Record{Key: c.Key(), Copy: c, State: st, DestinationImageID: "img-" + region}
}

// testSettleCompletesOnceUnderContention settles every region of an image at once, each from
// a store of its own (as separate workers would): exactly one settle sees the set complete,
// and a settle delivered again reports the completion again.
func testSettleCompletesOnceUnderContention(t *testing.T, s *state.Store) {
	ctx := context.Background()
	img := domain.Image{Provider: "tencent", ImageID: "img-race", SourceRegion: "ap-guangzhou"}
	regions := []string{"r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"}
	if err := s.SavePlan(ctx, domain.Plan{Image: img, Regions: regions, CorrelationID: "c"}); err != nil {
		t.Fatal(err)
	}
	if p, ok, err := s.Settle(ctx, img, settledRecord(img, "r1", domain.StateInProgress)); err != nil || ok || len(p.Settled) != 0 {
		t.Fatalf("settle of an unsettled record: %v complete %v (%v), want nothing recorded", p.Settled, ok, err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		complete int
	)
	for i, r := range regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := domain.StateSucceeded
			if i == 3 {
				st = domain.StateFailed
			}
			worker := state.New(s.Bucket()) // a store of its own: nothing remembered
			if _, err := worker.Plan(ctx, img); err != nil {
				t.Error(err)
				return
			}
			_, ok, err := worker.Settle(ctx, img, settledRecord(img, r, st))
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				complete++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if complete != 1 {
		t.Fatalf("%d settles saw the image complete, want exactly 1", complete)
	}
	p, ok, err := state.New(s.Bucket()).Settle(ctx, img, settledRecord(img, "r2", domain.StateFailed))
	if err != nil || !ok || len(p.Settled) != len(regions) {
		t.Fatalf("settle delivered again: complete %v with %d regions (%v), want complete with %d", ok, len(p.Settled), err, len(regions))
	}
	if p.Settled["r2"].State != domain.StateSucceeded || p.Settled["r4"].State != domain.StateFailed || p.Settled["r1"].DestinationImageID != "img-r1" {
		t.Errorf("settlements %+v: a region is recorded once, as it first settled", p.Settled)
	}
	if _, _, err := s.Settle(ctx, domain.Image{Provider: "tencent", ImageID: "img-none"}); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("settle without a plan: %v, want ErrNotFound", err)
	}
}

// testSettleRecoversFromAStaleRecentPlan: a store that remembers a plan another store has
// changed since still records its region and sees the other's, and a settle delivered again
// to a store whose remembered plan is not complete reads the stored one before saying so.
func testSettleRecoversFromAStaleRecentPlan(t *testing.T, s *state.Store) {
	ctx := context.Background()
	img := domain.Image{Provider: "tencent", ImageID: "img-stale", SourceRegion: "ap-guangzhou"}
	if err := s.SavePlan(ctx, domain.Plan{Image: img, Regions: []string{"a", "b"}, CorrelationID: "c"}); err != nil {
		t.Fatal(err)
	}
	if p, ok := s.RecentPlan(img); !ok || !slices.Equal(p.Regions, []string{"a", "b"}) {
		t.Fatalf("RecentPlan after SavePlan = %+v %v, want the saved plan", p, ok)
	}
	other := state.New(s.Bucket())
	if _, ok, err := other.Settle(ctx, img, settledRecord(img, "a", domain.StateSucceeded)); err != nil || ok {
		t.Fatalf("first settle: complete %v (%v)", ok, err)
	}
	p, ok, err := s.Settle(ctx, img, settledRecord(img, "b", domain.StateSucceeded))
	if err != nil || !ok || len(p.Settled) != 2 {
		t.Fatalf("settle from a stale plan: %+v complete %v (%v), want both regions and complete", p.Settled, ok, err)
	}
	// other remembers the plan with a only; a redelivered settle of a must still say complete.
	if _, ok, err := other.Settle(ctx, img, settledRecord(img, "a", domain.StateSucceeded)); err != nil || !ok {
		t.Fatalf("redelivered settle to a store with a stale plan: complete %v (%v), want complete", ok, err)
	}
	if _, ok := state.New(s.Bucket()).RecentPlan(img); ok {
		t.Error("a new store remembers a plan it never read")
	}
}

// testSettleOfALegacyPlanReadsTheRecords: a plan stored by an earlier version does not track
// its settled regions, so its completion is judged from the records.
func testSettleOfALegacyPlanReadsTheRecords(t *testing.T, s *state.Store) {
	ctx := context.Background()
	img := domain.Image{Provider: "tencent", ImageID: "img-legacy", SourceRegion: "ap-guangzhou"}
	raw, err := json.Marshal(domain.Plan{Image: img, Regions: []string{"a", "b"}, CorrelationID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bucket().Create(ctx, state.PlanKey(img), raw); err != nil {
		t.Fatal(err)
	}
	// a settled before the upgrade: its record says so, the plan does not.
	for _, r := range []domain.Record{settledRecord(img, "a", domain.StateFailed), settledRecord(img, "b", domain.StateInProgress)} {
		if err := s.CreateRecord(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := s.Settle(ctx, img, settledRecord(img, "b", domain.StateInProgress)); err != nil || ok {
		t.Fatalf("legacy plan with b in progress: complete %v (%v)", ok, err)
	}
	b := settledRecord(img, "b", domain.StateSucceeded)
	if _, err := s.UpdateRecord(ctx, b.Copy, func(r *domain.Record) error { r.State = domain.StateSucceeded; return nil }); err != nil {
		t.Fatal(err)
	}
	p, ok, err := s.Settle(ctx, img, b)
	if err != nil || !ok || p.Settled["a"].State != domain.StateFailed || p.Settled["b"].State != domain.StateSucceeded {
		t.Fatalf("legacy plan settled: %+v complete %v (%v), want both regions from their records", p.Settled, ok, err)
	}
	if stored, err := s.Plan(ctx, img); err != nil || stored.TracksSettled || stored.Settled != nil {
		t.Errorf("legacy plan stored as %+v (%v): it must stay as it was", stored, err)
	}
}

// testRecordsOfImageIDListsOnlyThatImage: `imagerelay status --image` lists one image's
// records, whatever its provider, account and version, and nothing else.
func testRecordsOfImageIDListsOnlyThatImage(t *testing.T, s *state.Store) {
	ctx := context.Background()
	imgs := []domain.Image{
		{Provider: "tencent", ImageID: "img-a", VersionID: "v1"},
		{Provider: "tencent", ImageID: "img-a", VersionID: "v2", Account: "acme"},
		{Provider: "alibaba", ImageID: "img-a"},
		{Provider: "tencent", ImageID: "img-ab"},
		{Provider: "tencent", ImageID: "img-a.b"},
	}
	for _, img := range imgs {
		for _, region := range []string{"r1", "r2"} {
			if err := s.CreateRecord(ctx, settledRecord(img, region, domain.StateRequested)); err != nil {
				t.Fatal(err)
			}
		}
	}
	recs, err := s.RecordsOfImageID(ctx, "img-a")
	if err != nil || len(recs) != 6 {
		t.Fatalf("RecordsOfImageID(img-a) = %d records (%v), want 6", len(recs), err)
	}
	for i, r := range recs {
		if r.ImageID != "img-a" || i > 0 && recs[i-1].Key > r.Key {
			t.Errorf("record %d: %s (image %s); want img-a only, sorted by key", i, r.Key, r.ImageID)
		}
	}
	if recs, err := s.RecordsOfImageID(ctx, "img-a.b"); err != nil || len(recs) != 2 {
		t.Errorf("RecordsOfImageID(img-a.b) = %d records (%v), want 2", len(recs), err)
	}
}
