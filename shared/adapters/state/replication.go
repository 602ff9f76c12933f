package state

import (
	"context"
	"errors"
	"sort"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// Plan is the stored list of destinations fanout chose for one image; replication.completed
// is emitted when every one of them has settled.
//
// It is also the authority replicate checks every replication.requested against: a request
// for a region the plan does not name, or for an image other than the planned one, was not
// emitted by fanout and is refused.
type Plan struct {
	events.Image
	Regions       []string `json:"regions"`
	CorrelationID string   `json:"correlationId"`
	// Attributes are the published image's attributes the plan's constraints were checked
	// against. Plans stored by earlier versions have none; their requests are checked on the
	// image and regions only.
	Attributes *ImageAttributes `json:"attributes,omitempty"`
}

// ImageAttributes are the attributes of a published image that decide whether a provider
// may copy it (size, encryption, ISO origin): a request must carry the planned ones.
type ImageAttributes struct {
	SizeGB    int  `json:"sizeGB"`
	Encrypted bool `json:"encrypted"`
	FromISO   bool `json:"fromISO"`
}

// RecordKey returns the bucket key of a replication record:
// repl.<provider>.<account>.<image>.<version>.<region>, each part one escaped token (see
// [Key]). The parts are those of events.ReplicationKey, with the same defaults (account
// "default", version "-"), so one record answers to one replication key and to nothing else.
func RecordKey(r events.Replication) string {
	return Key(append([]string{recordPrefix}, replicationParts(r)...)...)
}

// PlanKey returns the bucket key of an image's plan: plan.<provider>.<account>.<image>.<version>.
func PlanKey(i events.Image) string { return Key(append([]string{planPrefix}, imageParts(i)...)...) }

// RecordsOfImage is the [List] filter of the replication records of every version of an
// image, in every region.
func RecordsOfImage(i events.Image) string {
	return Prefix(append([]string{recordPrefix}, imageParts(i)[:3]...)...)
}

const (
	recordPrefix = "repl"
	planPrefix   = "plan"
)

func imageParts(i events.Image) []string {
	account, version := i.Account, i.VersionID
	if account == "" {
		account = "default"
	}
	if version == "" {
		version = "-"
	}
	return []string{i.Provider, account, i.ImageID, version}
}

func replicationParts(r events.Replication) []string {
	return append(imageParts(r.Image), r.DestinationRegion)
}

// Record reads one replication record.
func (s *Store) Record(ctx context.Context, r events.Replication) (domain.Record, uint64, error) {
	return Get[domain.Record](ctx, s, RecordKey(r))
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
func (s *Store) SavePlan(ctx context.Context, p Plan) error {
	key := PlanKey(p.Image)
	if _, err := Create(ctx, s, key, p); !errors.Is(err, ErrExists) {
		return err
	}
	_, err := Update(ctx, s, key, func(old *Plan) error {
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
func (s *Store) Plan(ctx context.Context, i events.Image) (Plan, error) {
	p, _, err := Get[Plan](ctx, s, PlanKey(i))
	return p, err
}

// Settled returns the records of every planned region of an image and whether all of them
// have settled. A region without a record yet is not settled.
func (s *Store) Settled(ctx context.Context, i events.Image) (Plan, []domain.Record, bool, error) {
	p, err := s.Plan(ctx, i)
	if err != nil {
		return p, nil, false, err
	}
	all := true
	var recs []domain.Record
	for _, region := range p.Regions {
		rec, _, err := s.Record(ctx, events.Replication{Image: i, DestinationRegion: region})
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
	_, err := Create(ctx, s, RecordKey(events.Replication{Image: events.Image(rec.Image), DestinationRegion: rec.DestinationRegion}), rec)
	return err
}

// UpdateRecord changes a replication record with compare-and-swap (see [Update]).
func (s *Store) UpdateRecord(ctx context.Context, r events.Replication, change func(*domain.Record) error) (domain.Record, error) {
	return Update(ctx, s, RecordKey(r), change)
}
