package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/quick"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/dev/natsembed"
	"github.com/imagerelay/imagerelay/shared/domain"
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
	if _, err := Create(ctx, s, "c.1", counter{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, s, "c.1", counter{N: 9}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	// 20 writers increment concurrently: compare-and-swap retries make every one count.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Update(ctx, s, "c.1", func(c *counter) error { c.N++; return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _, err := Get[counter](ctx, s, "c.1")
	if err != nil || got.N != 20 {
		t.Fatalf("counter %d (%v), want 20", got.N, err)
	}
	// ErrNoChange leaves the record and its revision alone.
	_, rev, _ := Get[counter](ctx, s, "c.1")
	if _, err := Update(ctx, s, "c.1", func(*counter) error { return ErrNoChange }); err != nil {
		t.Fatal(err)
	}
	if _, rev2, _ := Get[counter](ctx, s, "c.1"); rev2 != rev {
		t.Errorf("revision moved from %d to %d on ErrNoChange", rev, rev2)
	}
	if _, err := Update(ctx, s, "c.missing", func(*counter) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of a missing record: %v, want ErrNotFound", err)
	}
}

func TestListMatchesWholeTokensOnly(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	for _, k := range []string{Key("repl", "a", "1"), Key("repl", "b", "2"), Key("plan", "a"), Key("replx", "c"), Key("repl")} {
		if _, err := Create(ctx, s, k, counter{N: len(k)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, Key("repl", "b", "2")); err != nil {
		t.Fatal(err)
	}
	got, err := List[counter](ctx, s, Prefix("repl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].N != len(Key("repl", "a", "1")) {
		t.Fatalf("listed %v under repl.>, want only the live repl.a.1", got)
	}
	if all, err := List[counter](ctx, s, Prefix()); err != nil || len(all) != 4 {
		t.Fatalf("listed %d records under >, want 4 (%v)", len(all), err)
	}
}

// The rebuild function still lists with the prefixes it wrote for the '/' keys; they must find
// the same records under the current keys.
func TestListTranslatesLegacyPrefixes(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	img := events.Image{Provider: "alibaba", ImageID: "imgc-1", VersionID: "iv-1", SourceRegion: "cn-shanghai"}
	for _, region := range []string{"cn-beijing", "cn-hangzhou"} {
		r := events.Replication{Image: img, DestinationRegion: region}
		if err := s.CreateRecord(ctx, domain.Record{Key: events.ReplicationKey(r), Copy: copyOf(r)}); err != nil {
			t.Fatal(err)
		}
	}
	other := events.Replication{Image: events.Image{Provider: "alibaba", ImageID: "imgc-10"}, DestinationRegion: "cn-beijing"}
	if err := s.CreateRecord(ctx, domain.Record{Key: events.ReplicationKey(other), Copy: copyOf(other)}); err != nil {
		t.Fatal(err)
	}
	rollout := Key("rebuild", "rollout", "office", events.ReplicationKey(events.Replication{Image: img, DestinationRegion: "cn-beijing"}))
	if _, err := Create(ctx, s, rollout, counter{N: 1}); err != nil {
		t.Fatal(err)
	}
	// The filters functions/rebuild lists with.
	recs, err := List[domain.Record](ctx, s, RecordsOfImage(img))
	if err != nil || len(recs) != 2 {
		t.Fatalf("image filter listed %d records (%v), want the two of imgc-1 (not imgc-10)", len(recs), err)
	}
	if ro, err := List[counter](ctx, s, Prefix("rebuild", "rollout")); err != nil || len(ro) != 1 {
		t.Fatalf("rollout filter listed %d (%v), want 1", len(ro), err)
	}
}

// Keys used to fold every character outside [A-Za-z0-9-_=/] to '_': "img-bad.0032" and
// "img-bad_0032" shared one record, and so did accounts that differ in a folded character.
func TestDistinctPartsGetDistinctRecords(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	base := events.Image{Provider: "tencent", SourceRegion: "ap-guangzhou", ImageID: "img-bad.0032"}
	variants := []events.Image{base}
	for _, mut := range []func(*events.Image){
		func(i *events.Image) { i.ImageID = "img-bad_0032" },
		func(i *events.Image) { i.ImageID = "img-bad/0032" },
		func(i *events.Image) { i.Account = "acme.cn" },
		func(i *events.Image) { i.Account = "acme_cn" },
		func(i *events.Image) { i.Account = "acme cn" },
		func(i *events.Image) { i.Account = "acmé" },
		func(i *events.Image) { i.VersionID = "v1.0" },
		func(i *events.Image) { i.VersionID = "v1_0" },
	} {
		v := base
		mut(&v)
		variants = append(variants, v)
	}
	for _, img := range variants {
		r := events.Replication{Image: img, DestinationRegion: "ap-shanghai"}
		if err := s.CreateRecord(ctx, domain.Record{Key: events.ReplicationKey(r), Copy: copyOf(r), State: domain.StateRequested}); err != nil {
			t.Fatalf("record of %+v: %v (it collides with another)", img, err)
		}
		if err := s.SavePlan(ctx, Plan{Image: img, Regions: []string{"ap-shanghai"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, img := range variants {
		r := events.Replication{Image: img, DestinationRegion: "ap-shanghai"}
		rec, _, err := s.Record(ctx, r)
		if err != nil || rec.Copy != copyOf(r) {
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

func TestKeyEscapesEveryByteAKeyTokenCannotHold(t *testing.T) {
	cases := map[string][]string{
		"repl.tencent.default.img_201_2A_3E.-.ap_2Ex": {"repl", "tencent", "default", "img 1*>", "-", "ap.x"},
		"a._.b":              {"a", "", "b"},
		"_5F":                {"_"},
		"_":                  {""},
		"_E9_95_9C":          {"镜"},
		"x_2Fy":              {"x/y"},
		"img-bad_2E0032":     {"img-bad.0032"},
		"img-bad_5F0032":     {"img-bad_0032"},
		"rebuild.on.r1.d_3D": {"rebuild", "on", "r1", "d="},
	}
	for want, parts := range cases {
		if got := Key(parts...); got != want {
			t.Errorf("Key(%q) = %q, want %q", parts, got, want)
		}
		back, err := ParseKey(want)
		if err != nil || !slices.Equal(back, parts) {
			t.Errorf("ParseKey(%q) = %q (%v), want %q", want, back, err, parts)
		}
	}
	for _, bad := range []string{"", "a..b", ".a", "a_", "a_2", "a_2e", "a_41", "a/b", "a b", "__"} {
		if parts, err := ParseKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseKey(%q) = %q, %v; want ErrBadKey", bad, parts, err)
		}
	}
}

// validKey is the key syntax of the JetStream KV client (nats.go jetstream keyValid).
var validKey = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)

func checkKeyRoundTrip(t *testing.T, parts []string) {
	t.Helper()
	if len(parts) == 0 {
		return
	}
	k := Key(parts...)
	if !validKey.MatchString(k) || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") || strings.Contains(k, "..") {
		t.Fatalf("Key(%q) = %q is not a valid KV key", parts, k)
	}
	if strings.Count(k, ".") != len(parts)-1 {
		t.Fatalf("Key(%q) = %q has %d tokens, want one per part", parts, k, strings.Count(k, ".")+1)
	}
	back, err := ParseKey(k)
	if err != nil || !slices.Equal(back, parts) {
		t.Fatalf("ParseKey(Key(%q)) = %q (%v): Key is not injective", parts, back, err)
	}
}

// Key is injective: every list of parts decodes back from its key, so two lists that share a
// key are equal. Random lists are drawn from an alphabet rich in the characters that used
// to collide.
func TestKeyIsInjective(t *testing.T) {
	alphabet := []string{"a", "Z", "0", "-", "_", ".", "/", "*", ">", " ", "=", "_5F", "_2E", "镜", "é", "\x00", "\xff", ""}
	gen := func(vals []reflect.Value, r *rand.Rand) {
		parts := make([]string, 1+r.Intn(6))
		for i := range parts {
			var b strings.Builder
			for range r.Intn(5) {
				b.WriteString(alphabet[r.Intn(len(alphabet))])
			}
			parts[i] = b.String()
		}
		vals[0] = reflect.ValueOf(parts)
	}
	seen := map[string][]string{}
	prop := func(parts []string) bool {
		checkKeyRoundTrip(t, parts)
		k := Key(parts...)
		if prev, ok := seen[k]; ok && !slices.Equal(prev, parts) {
			t.Fatalf("Key(%q) == Key(%q) == %q", prev, parts, k)
		}
		seen[k] = parts
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 20000, Values: gen, Rand: rand.New(rand.NewSource(8))}); err != nil {
		t.Fatal(err)
	}
}

// FuzzKey checks the round trip on arbitrary bytes (go test -fuzz=FuzzKey ./shared/adapters/state/).
func FuzzKey(f *testing.F) {
	for _, seed := range [][2]string{{"img-bad.0032", "img-bad_0032"}, {"", "_"}, {"a/b", "镜\xff"}, {"_41", "."}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		checkKeyRoundTrip(t, []string{a, b})
		checkKeyRoundTrip(t, []string{a + "." + b})
		if (Key(a, b) == Key(b, a)) != (a == b) {
			t.Fatalf("Key(%q, %q) and Key(%q, %q) collide", a, b, b, a)
		}
	})
}

func TestMigrateLegacyKeys(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	put := func(key string, v any) {
		t.Helper()
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.kv.Put(ctx, key, raw); err != nil {
			t.Fatal(err)
		}
	}
	img := events.Image{Provider: "tencent", ImageID: "img-bad.0032", SourceRegion: "ap-guangzhou"}
	inFlight := events.Replication{Image: img, DestinationRegion: "ap-shanghai"}
	rewritten := events.Replication{Image: img, DestinationRegion: "ap-beijing"}
	// What an earlier version left: folded '/' keys.
	put("repl/tencent/default/img-bad_0032/-/ap-shanghai", domain.Record{Key: events.ReplicationKey(inFlight), Copy: copyOf(inFlight),
		State: domain.StateInProgress, TaskID: "img-copy1"})
	put("repl/tencent/default/img-bad_0032/-/ap-beijing", domain.Record{Key: events.ReplicationKey(rewritten), Copy: copyOf(rewritten),
		State: domain.StateRequested})
	put("plan/tencent/default/img-bad_0032/-", Plan{Image: img, Regions: []string{"ap-shanghai", "ap-beijing"}})
	put("sem/huawei/default", semaphore{Holders: map[string]time.Time{"huawei/default/img-h/-/cn-east-3": time.Now().Add(time.Hour)}})
	put("rebuild/rollout/office/x", counter{N: 1})
	// The current version already wrote one of them under its new key: that one wins.
	if err := s.CreateRecord(ctx, domain.Record{Key: events.ReplicationKey(rewritten), Copy: copyOf(rewritten),
		State: domain.StateInProgress, TaskID: "img-new"}); err != nil {
		t.Fatal(err)
	}

	moved, err := s.MigrateLegacyKeys(ctx)
	if err != nil || moved != 4 {
		t.Fatalf("MigrateLegacyKeys = %d, %v; want 4 moved", moved, err)
	}
	if rec, _, err := s.Record(ctx, inFlight); err != nil || rec.TaskID != "img-copy1" || rec.State != domain.StateInProgress {
		t.Errorf("migrated record %+v (%v)", rec, err)
	}
	if rec, _, err := s.Record(ctx, rewritten); err != nil || rec.TaskID != "img-new" {
		t.Errorf("record written by the current version was replaced: %+v (%v)", rec, err)
	}
	if p, err := s.Plan(ctx, img); err != nil || len(p.Regions) != 2 {
		t.Errorf("migrated plan %+v (%v)", p, err)
	}
	if h, err := s.Holders(ctx, "huawei/default"); err != nil || len(h) != 1 {
		t.Errorf("migrated semaphore holders %v (%v)", h, err)
	}
	for _, old := range []string{"repl/tencent/default/img-bad_0032/-/ap-shanghai", "repl/tencent/default/img-bad_0032/-/ap-beijing", "plan/tencent/default/img-bad_0032/-", "sem/huawei/default"} {
		if _, err := s.kv.Get(ctx, old); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("legacy key %s is still there (%v)", old, err)
		}
	}
	if _, err := s.kv.Get(ctx, "rebuild/rollout/office/x"); err != nil {
		t.Errorf("a legacy key the migration does not own was touched: %v", err)
	}
	if recs, err := s.Records(ctx); err != nil || len(recs) != 2 {
		t.Errorf("Records after migration = %d (%v), want 2", len(recs), err)
	}
	if again, err := s.MigrateLegacyKeys(ctx); err != nil || again != 0 {
		t.Errorf("second migration moved %d (%v), want 0", again, err)
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

// Every read of the bucket goes to the stream leader, so a decision read from it sees every
// write acknowledged before it, on a cluster too (direct gets may be answered by a replica
// that is behind).
func TestBucketReadsFromTheLeader(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	info, err := s.kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.AllowDirect {
		t.Fatal("the bucket allows direct gets: reads may come from a replica that is behind")
	}
}

// copyOf is the domain copy of r, as a record holds it.
func copyOf(r events.Replication) domain.Copy {
	return domain.Copy{Image: domain.Image(r.Image), DestinationRegion: r.DestinationRegion}
}
