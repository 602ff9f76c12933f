// Package constraints holds Alibaba Cloud App Streaming's limits on distributing a WUYING
// image to other regions, without the cloud SDK: fanout checks every planned region against
// them before any call, and links no SDK to do so. The alibaba adapter uses the same checker.
package constraints

import (
	"fmt"
	"slices"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// rules are the limits distribution shares with the other providers, in Alibaba's words.
var rules = domain.CopyRules{
	SameRegion: "same as the source region",
	Encrypted:  "encrypted images cannot be distributed to other regions (ImageDistribute.ImageNotSupport)",
}

// KnownRegions are the WUYING regions App Streaming images can be distributed to (inferred
// from the product's region list; a configuration can override them).
func KnownRegions() []string {
	return []string{
		"cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen", "cn-hongkong",
		"ap-southeast-1", "ap-northeast-1", "ap-southeast-5", "eu-central-1", "us-west-1",
	}
}

// Checker checks distributions against App Streaming's limits. It is immutable and safe for
// concurrent use.
type Checker struct {
	regions []string
}

// New returns a checker that knows regions; empty means KnownRegions.
func New(regions []string) *Checker {
	if len(regions) == 0 {
		regions = KnownRegions()
	}
	return &Checker{regions: slices.Clone(regions)}
}

// Regions returns the regions the checker knows.
func (c *Checker) Regions() []string { return slices.Clone(c.regions) }

// CheckCopy returns why src cannot be distributed to region, or "".
func (c *Checker) CheckCopy(src domain.Source, region string) string {
	switch {
	case region == "":
		return "no destination region"
	case !slices.Contains(c.regions, region):
		return fmt.Sprintf("unknown region: %s is not a WUYING region App Streaming images can be distributed to", region)
	}
	return domain.CheckCommon(src, region, rules)
}
