package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// RecordKey returns the bucket key of a replication record:
// repl.<provider>.<account>.<image>.<version>.<region>, each part one escaped token (see
// [Key]). The parts are those of events.ReplicationKey, with the same defaults (account
// "default", version "-"), so one record answers to one replication key and to nothing else.
func RecordKey(c domain.Copy) string {
	return Key(append([]string{recordPrefix}, c.KeyParts()...)...)
}

// PlanKey returns the bucket key of an image's plan: plan.<provider>.<account>.<image>.<version>.
func PlanKey(i domain.Image) string { return Key(append([]string{planPrefix}, i.KeyParts()...)...) }

// RecordsOfImage is the [List] filter of the replication records of every version of an
// image, in every region.
func RecordsOfImage(i domain.Image) string {
	return Prefix(append([]string{recordPrefix}, i.KeyParts()[:3]...)...)
}

const (
	recordPrefix = "repl"
	planPrefix   = "plan"
)

// Record reads the replication record of one copy; ErrNotFound when there is none.
func (s *Store) Record(ctx context.Context, c domain.Copy) (domain.Record, error) {
	rec, _, err := Get[domain.Record](ctx, s, RecordKey(c))
	return rec, err
}

// RecordsOf returns the replication records of every version of an image, in every region,
// listed with a filter on the image's key tokens (the bucket filters; nothing else is read).
func (s *Store) RecordsOf(ctx context.Context, i domain.Image) ([]domain.Record, error) {
	return List[domain.Record](ctx, s, RecordsOfImage(i))
}

// RecordsOfImageID returns the replication records of every image with this id, whatever
// its provider, account and version, sorted by key, for `imagerelay status --image`. The
// image id is one whole token of the key, so the bucket filters on it (repl.*.*.<id>.>) and
// only those records are read.
func (s *Store) RecordsOfImageID(ctx context.Context, imageID string) ([]domain.Record, error) {
	recs, err := List[domain.Record](ctx, s, Key(recordPrefix)+".*.*."+Key(imageID)+".>")
	sort.Slice(recs, func(i, j int) bool { return recs[i].Key < recs[j].Key })
	return recs, err
}

// Records returns every replication record, sorted by key, for `imagerelay status` and for
// sweeps over in-flight copies. It reads them with one server-filtered watch on repl.>, which
// delivers the values too: no key listing, no read per key, no other records.
func (s *Store) Records(ctx context.Context) ([]domain.Record, error) {
	recs, err := List[domain.Record](ctx, s, Prefix(recordPrefix))
	sort.Slice(recs, func(i, j int) bool { return recs[i].Key < recs[j].Key })
	return recs, err
}

// SavePlan stores an image's plan, merging regions into an existing plan of the same image.
// A plan it creates tracks its settled regions (see [Store.Settle]); a plan stored by an
// earlier version keeps judging completion from the records, since the settles made before
// the upgrade are not in it.
func (s *Store) SavePlan(ctx context.Context, p domain.Plan) error {
	key := PlanKey(p.Image)
	p.TracksSettled, p.Settled = true, nil
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("state: encode %s: %w", key, err)
	}
	if rev, err := s.b.Create(ctx, key, raw); !errors.Is(err, ErrExists) {
		if err == nil {
			s.plans.put(key, raw, rev)
		}
		return err
	}
	_, err = Update(ctx, s, key, func(old *domain.Plan) error {
		added := false
		if old.Attributes == nil && p.Attributes != nil {
			// A plan stored by an earlier version learns the attributes it lacked.
			old.Attributes, added = p.Attributes, true
		}
		for _, r := range p.Regions {
			if !slices.Contains(old.Regions, r) {
				old.Regions = append(old.Regions, r)
				added = true
			}
		}
		if !added {
			return ErrNoChange
		}
		return nil
	})
	return err
}

// Plan reads an image's plan.
func (s *Store) Plan(ctx context.Context, i domain.Image) (domain.Plan, error) {
	p, _, err := s.readPlan(ctx, PlanKey(i))
	return p, err
}

// RecentPlan returns the plan of image i as this store last read or wrote it, without a
// read; ok is false when it has none. It may be older than the stored plan: plans only grow
// (regions are added, attributes set once on a plan stored without them, settlements
// added), so what a recent plan allows, the stored one allows too; anything it does not
// allow must be checked against [Store.Plan].
func (s *Store) RecentPlan(i domain.Image) (p domain.Plan, ok bool) {
	raw, _, ok := s.plans.get(PlanKey(i))
	if !ok || json.Unmarshal(raw, &p) != nil {
		return domain.Plan{}, false
	}
	return p, true
}

// readPlan reads the plan at key and remembers it, with its revision, for [Store.Settle].
func (s *Store) readPlan(ctx context.Context, key string) (domain.Plan, uint64, error) {
	var p domain.Plan
	raw, rev, err := s.b.Get(ctx, key)
	if err != nil {
		return p, 0, err
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, 0, fmt.Errorf("state: decode %s: %w", key, err)
	}
	s.plans.put(key, raw, rev)
	return p, rev, nil
}

// Settle records in the plan of image i that the settled records recs have settled, and
// returns the plan as stored and whether every planned region has now settled: the caller
// whose settle completes the set announces replication.completed. It is one
// compare-and-swap on the plan, started from the revision this store last read or wrote
// when it has one (no read at all when nobody wrote the plan since), instead of a read of
// every sibling's record. A region already recorded is left as it is, so a redelivered
// settle changes nothing and reports the same completion again.
//
// A plan stored by an earlier version does not track its settled regions: its completion is
// judged from the records of its regions, as that version did ([Store.Settled]), and the
// returned plan's Settled is filled from them (and not stored). domain.ErrNotFound when i
// has no plan.
func (s *Store) Settle(ctx context.Context, i domain.Image, recs ...domain.Record) (domain.Plan, bool, error) {
	key := PlanKey(i)
	var (
		p      domain.Plan
		rev    uint64
		err    error
		cached bool
	)
	if raw, r, ok := s.plans.get(key); ok && json.Unmarshal(raw, &p) == nil {
		rev, cached = r, true
	} else if p, rev, err = s.readPlan(ctx, key); err != nil {
		return p, false, err
	}
	for attempt := 0; ; attempt++ {
		if !p.TracksSettled {
			return s.settledFromRecords(ctx, i)
		}
		changed := false
		for _, r := range recs {
			if _, done := p.Settled[r.DestinationRegion]; done || !r.State.Settled() || !slices.Contains(p.Regions, r.DestinationRegion) {
				continue
			}
			if p.Settled == nil {
				p.Settled = map[string]domain.Settlement{}
			}
			p.Settled[r.DestinationRegion], changed = domain.SettlementOf(r), true
		}
		switch {
		case !changed && (p.Complete() || !cached):
			return p, p.Complete(), nil
		case changed:
			raw, err := json.Marshal(p)
			if err != nil {
				return p, false, fmt.Errorf("state: encode %s: %w", key, err)
			}
			next, err := s.b.Update(ctx, key, raw, rev)
			if err == nil {
				s.plans.put(key, raw, next)
				return p, p.Complete(), nil
			}
			if !errors.Is(err, ErrRevisionMismatch) {
				return p, false, err
			}
		}
		// The remembered plan was stale (someone wrote it since), or it says the set is not
		// complete, which only a fresh read may say: a redelivered settle must announce a
		// completion that another worker's settle made.
		s.plans.forget(key)
		if attempt > 100 {
			return p, false, fmt.Errorf("state: settle %s: too much contention", key)
		}
		if err := ctx.Err(); err != nil {
			return p, false, err
		}
		if p, rev, err = s.readPlan(ctx, key); err != nil {
			return p, false, err
		}
		cached = false
	}
}

// settledFromRecords is Settle for a plan stored by an earlier version, which does not track
// its settled regions: the records of its regions say.
func (s *Store) settledFromRecords(ctx context.Context, i domain.Image) (domain.Plan, bool, error) {
	p, recs, all, err := s.Settled(ctx, i)
	if err != nil {
		return p, false, err
	}
	p.Settled = map[string]domain.Settlement{}
	for _, r := range recs {
		if r.State.Settled() {
			p.Settled[r.DestinationRegion] = domain.SettlementOf(r)
		}
	}
	return p, all && len(p.Regions) > 0, nil
}

// Settled returns the records of every planned region of an image and whether all of them
// have settled, read one by one. A region without a record yet is not settled. It is how
// completion was judged before plans tracked their settled regions; [Store.Settle] uses it
// for plans stored by earlier versions.
func (s *Store) Settled(ctx context.Context, i domain.Image) (domain.Plan, []domain.Record, bool, error) {
	p, err := s.Plan(ctx, i)
	if err != nil {
		return p, nil, false, err
	}
	all := true
	var recs []domain.Record
	for _, region := range p.Regions {
		rec, err := s.Record(ctx, domain.Copy{Image: i, DestinationRegion: region})
		if errors.Is(err, ErrNotFound) {
			all = false
			continue
		}
		if err != nil {
			return p, nil, false, err
		}
		recs = append(recs, rec)
		if !rec.State.Settled() {
			all = false
		}
	}
	return p, recs, all, nil
}

// CreateRecord stores a new replication record; ErrExists if one is there.
func (s *Store) CreateRecord(ctx context.Context, rec domain.Record) error {
	_, err := Create(ctx, s, RecordKey(rec.Copy), rec)
	return err
}

// UpdateRecord changes a replication record with compare-and-swap (see [Update]).
func (s *Store) UpdateRecord(ctx context.Context, c domain.Copy, change func(*domain.Record) error) (domain.Record, error) {
	return Update(ctx, s, RecordKey(c), change)
}

// RecordRevision reads the replication record of one copy and its revision, for a later
// [Store.UpdateRecordFrom]; ErrNotFound when there is none.
func (s *Store) RecordRevision(ctx context.Context, c domain.Copy) (domain.Record, uint64, error) {
	return Get[domain.Record](ctx, s, RecordKey(c))
}

// CreateRecordRevision stores a new replication record and returns its revision, for a later
// [Store.UpdateRecordFrom]; ErrExists if one is there. A record created in a claimed state
// is a claim won in the same write that creates it.
func (s *Store) CreateRecordRevision(ctx context.Context, rec domain.Record) (uint64, error) {
	return Create(ctx, s, RecordKey(rec.Copy), rec)
}

// UpdateRecordFrom changes rec, read (or created) at revision rev, with compare-and-swap and
// without reading it first (see [UpdateFrom]): when another writer got there first, change
// is applied to the record as it is now, as [Store.UpdateRecord] would. It returns the record
// as stored and its revision.
func (s *Store) UpdateRecordFrom(ctx context.Context, rec domain.Record, rev uint64, change func(*domain.Record) error) (domain.Record, uint64, error) {
	return UpdateFrom(ctx, s, RecordKey(rec.Copy), rec, rev, change)
}
