// Package fanout is the core of the fanout function: it turns one image.published event into
// a replication plan and one replication.requested event per destination region, checking
// each provider's documented constraints before any API call is made.
package fanout

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/core/policy"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// Name is the function's name on the bus.
const Name = "fanout"

// Policy says which images go to which regions.
type Policy struct {
	Name         string
	Match        policy.Match
	Regions      []string
	Timeout      time.Duration
	PollInterval time.Duration
}

// Plans records each image's plan, so that replicate can check every request against it and
// the completion of every region can be detected; the state store implements it.
type Plans interface {
	// SavePlan stores p, merging its regions into an existing plan of the same image.
	SavePlan(ctx context.Context, p domain.Plan) error
}

// Core is the fanout function. Its fields are set once at start; it is safe for concurrent use.
type Core struct {
	// Policies select destinations: every policy that matches an image adds its regions.
	Policies []Policy
	// Checkers holds the constraint checker of each configured provider.
	Checkers map[string]ConstraintChecker
	// Unavailable holds why each provider without a checker could not be built (missing
	// credentials), for the dead-letter reason.
	Unavailable map[string]error
	Plans       Plans
	// Timeout and PollInterval apply when a policy sets none.
	Timeout      time.Duration
	PollInterval time.Duration
}

// Handle plans the replication of one published image.
func (c *Core) Handle(ctx context.Context, e event.Event) fn.Result {
	img, res, ok := fn.Decode[events.ImagePublished](Name, events.TypeImagePublished, e)
	if !ok {
		return res
	}
	checker, err := domain.Pick(c.Checkers, img.Provider, c.Unavailable)
	if err != nil {
		return fn.Reject(err)
	}
	planned := events.ReplicationPlanned{Image: img.Image, Regions: []string{}}
	// Every matching policy contributes its regions; a region listed by several keeps the
	// settings of the first.
	var names []string
	byRegion := map[string]Policy{}
	var order []string
	for _, pol := range c.Policies {
		if !pol.Match.Matches(img.Image, img.Tags) {
			continue
		}
		names = append(names, pol.Name)
		for _, r := range pol.Regions {
			if _, seen := byRegion[r]; !seen {
				byRegion[r] = pol
				order = append(order, r)
			}
		}
	}
	planned.Policy = strings.Join(names, ",")
	for _, region := range c.destinations(img, order, planned.Policy, &planned) {
		if reason := checker.CheckCopy(sourceOf(img), region); reason != "" {
			planned.Skipped = append(planned.Skipped, events.SkippedRegion{Region: region, Reason: reason})
			continue
		}
		planned.Regions = append(planned.Regions, region)
	}
	var requests []event.Event
	for _, region := range planned.Regions {
		req, err := events.Derive(e, Name, events.TypeReplicationRequested, c.request(img, byRegion[region], region, planned.Regions),
			img.Provider, region, img.ImageID, region)
		if err != nil {
			return fn.Reject(err)
		}
		requests = append(requests, req)
	}
	if len(planned.Regions) > 0 {
		// The plan is stored before any request exists, so completion can be judged later.
		// replicate checks every request against it, so it records what the requests carry.
		if err := c.Plans.SavePlan(ctx, domain.Plan{Image: domain.Image(img.Image), Regions: planned.Regions, CorrelationID: events.CorrelationID(e),
			Attributes: &domain.ImageAttributes{SizeGB: img.SizeGB, Encrypted: img.Encrypted, FromISO: img.FromISO}}); err != nil {
			return fn.Retry(0, err)
		}
	}
	plan, err := events.Derive(e, Name, events.TypeReplicationPlanned, planned, img.Provider, img.SourceRegion, img.ImageID)
	if err != nil {
		return fn.Reject(err)
	}
	return fn.Done(append([]event.Event{plan}, requests...)...)
}

// sourceOf is what a constraint checker is asked about a published image: the domain's view
// of the event, mapped here, at the core's edge.
func sourceOf(img *events.ImagePublished) domain.Source {
	return domain.Source{Image: domain.Image(img.Image), SizeGB: img.SizeGB, Encrypted: img.Encrypted, FromISO: img.FromISO}
}

// destinations are the policies' regions, narrowed to the ones the event asks for (those no
// matching policy allows are skipped with a reason).
func (c *Core) destinations(img *events.ImagePublished, allowed []string, policies string, planned *events.ReplicationPlanned) []string {
	if len(img.Regions) == 0 {
		return allowed
	}
	var out []string
	for _, r := range dedupe(img.Regions) {
		switch {
		case slices.Contains(allowed, r):
			out = append(out, r)
		case policies == "":
			planned.Skipped = append(planned.Skipped, events.SkippedRegion{Region: r,
				Reason: "no replication policy matches this image; add a policy whose match selects it"})
		default:
			planned.Skipped = append(planned.Skipped, events.SkippedRegion{Region: r,
				Reason: fmt.Sprintf("policy %s does not replicate to %s; add it to the policy's regions", policies, r)})
		}
	}
	return out
}

func (c *Core) request(img *events.ImagePublished, pol Policy, region string, all []string) events.ReplicationRequested {
	timeout, interval := pol.Timeout, pol.PollInterval
	if timeout <= 0 {
		timeout = c.Timeout
	}
	if interval <= 0 {
		interval = c.PollInterval
	}
	return events.ReplicationRequested{
		Replication:         events.Replication{Image: img.Image, DestinationRegion: region},
		SizeGB:              img.SizeGB,
		Encrypted:           img.Encrypted,
		FromISO:             img.FromISO,
		Regions:             all,
		TimeoutSeconds:      int(timeout.Seconds()),
		PollIntervalSeconds: max(int(interval.Seconds()), 1),
		OSType:              img.OSType,
		Tags:                img.Tags,
	}
}

func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
