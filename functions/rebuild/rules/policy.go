package rules

import (
	"slices"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/core/policy"
)

// MaxBatchSize is the most desktops one RebuildDesktops call accepts (the API's limit).
const MaxBatchSize = 20

// Policy defaults, applied by [Policy.WithDefaults] to the fields a policy leaves at zero.
const (
	// DefaultCanary is how many desktops are rebuilt first, alone.
	DefaultCanary = 1
	// DefaultCheckInterval is how often desktop status is checked during a rollout.
	DefaultCheckInterval = 10 * time.Second
	// DefaultTimeout is how long one desktop may stay Rebuilding before it counts as failed.
	DefaultTimeout = time.Hour
)

// Policy rolls the desktops it selects onto a newly replicated image: a canary first, then
// batches, stopping when failures exceed the budget. It is the rebuild core's own form of a
// policy; the composition root builds it from the configuration file.
type Policy struct {
	// Name identifies the policy in rollout keys, events and logs.
	Name string
	// Match selects the images (Alibaba only: rebuild is for Elastic Desktop Service).
	Match policy.Match
	// Regions limits the destination regions where desktops are rebuilt; empty means every
	// destination region of the image.
	Regions []string
	// Desktops selects the desktops in each region.
	Desktops Selector
	// Canary is how many desktops are rebuilt first, alone, before any batch; 0 skips the
	// canary. It is kept within 0..MaxBatchSize.
	Canary int
	// BatchSize is how many desktops one RebuildDesktops call names, 1..MaxBatchSize; 0 means
	// MaxBatchSize.
	BatchSize int
	// FailureBudget is how many desktops may fail before the rollout stops; 0 stops at the
	// first failure.
	FailureBudget int
	// Window, when set, restricts rebuilds to a maintenance window; outside it the rollout
	// waits. Nil means any time.
	Window *Window
	// OperateType is passed to RebuildDesktops: "" keeps a data disk when the OS is
	// unchanged, "replace" replaces it.
	OperateType string
	// Language is the system language passed to RebuildDesktops; "" keeps the image's.
	Language string
	// AllowDataDiskWipe must be true to rebuild a desktop whose data disk would be wiped.
	AllowDataDiskWipe bool
	// DryRun plans and reports the rollout without calling RebuildDesktops.
	DryRun bool
	// CheckInterval is how often desktop status is checked during a rollout; 0 means
	// DefaultCheckInterval.
	CheckInterval time.Duration
	// Timeout is how long one desktop may stay Rebuilding before it counts as failed; 0
	// means DefaultTimeout.
	Timeout time.Duration
}

// DefaultPolicy returns a policy with every default set (canary 1, batches of 20, stop at the
// first failure, status checks every 10s, 1h per desktop) and nothing selected.
func DefaultPolicy() Policy {
	return Policy{Canary: DefaultCanary, BatchSize: MaxBatchSize, CheckInterval: DefaultCheckInterval, Timeout: DefaultTimeout}
}

// WithDefaults returns p with its zero durations and batch size set to their defaults and
// its counts brought within what the API takes. It is the one place where rebuild's policy
// defaults are applied: [New] applies it to every policy, so the core reads the fields as
// they are.
func (p Policy) WithDefaults() Policy {
	if p.BatchSize <= 0 {
		p.BatchSize = MaxBatchSize
	}
	p.BatchSize = min(p.BatchSize, MaxBatchSize)
	p.Canary = min(max(p.Canary, 0), MaxBatchSize)
	p.FailureBudget = max(p.FailureBudget, 0)
	if p.CheckInterval <= 0 {
		p.CheckInterval = DefaultCheckInterval
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	return p
}

// Selector chooses desktops. Set fields narrow the selection and all must hold; a selector
// with nothing set selects nothing (a rebuild wipes system disks, so it never defaults to
// every desktop).
type Selector struct {
	// IDs are explicit desktop ids.
	IDs []string
	// Tags must all be on the desktop with these values.
	Tags map[string]string
	// GroupID selects the desktops of one desktop group.
	GroupID string
	// OlderVersionOfImage selects the desktops that run an older copy of the same source
	// image (their current image came from an earlier replication of it).
	OlderVersionOfImage bool
}

// IsZero reports whether the selector sets nothing.
func (s Selector) IsZero() bool {
	return len(s.IDs) == 0 && len(s.Tags) == 0 && s.GroupID == "" && !s.OlderVersionOfImage
}

// Applies returns the policies, in their order, that rebuild desktops after the copy d: rebuild
// is for Alibaba Cloud desktops, so only copies of Alibaba images qualify, and a policy
// applies when it matches the image and names the copy's region (or no region at all).
func Applies(policies []Policy, d *events.ReplicationSucceeded) []Policy {
	if d == nil || d.Provider != events.ProviderAlibaba {
		return nil
	}
	var out []Policy
	for _, p := range policies {
		if (len(p.Regions) == 0 || slices.Contains(p.Regions, d.DestinationRegion)) && p.Match.Matches(d.Image, d.Tags) {
			out = append(out, p)
		}
	}
	return out
}
