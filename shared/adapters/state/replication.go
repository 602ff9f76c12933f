package state

import (
	"context"
	"errors"
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

// Records returns every replication record, sorted by key, for `imagerelay status` and for
// sweeps over in-flight copies. It reads them with one server-filtered watch on repl.>, which
// delivers the values too: no key listing, no read per key, no other records.
func (s *Store) Records(ctx context.Context) ([]domain.Record, error) {
	recs, err := List[domain.Record](ctx, s, Prefix(recordPrefix))
	sort.Slice(recs, func(i, j int) bool { return recs[i].Key < recs[j].Key })
	return recs, err
}

// SavePlan stores an image's plan, merging regions into an existing plan of the same image.
func (s *Store) SavePlan(ctx context.Context, p domain.Plan) error {
	key := PlanKey(p.Image)
	if _, err := Create(ctx, s, key, p); !errors.Is(err, ErrExists) {
		return err
	}
	_, err := Update(ctx, s, key, func(old *domain.Plan) error {
		added := false
		if old.Attributes == nil && p.Attributes != nil {
			// A plan stored by an earlier version learns the attributes it lacked.
			old.Attributes, added = p.Attributes, true
		}
		for _, r := range p.Regions {
			if !contains(old.Regions, r) {
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
	p, _, err := Get[domain.Plan](ctx, s, PlanKey(i))
	return p, err
}

// Settled returns the records of every planned region of an image and whether all of them
// have settled. A region without a record yet is not settled.
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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
