// Package constraints holds Tencent Cloud's documented limits on copying a CVM custom image
// across regions (SyncImages), without the cloud SDK: fanout checks every planned region
// against them before any call, and links no SDK to do so. The tencent adapter uses the same
// checker.
package constraints

import (
	"fmt"
	"slices"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// MaxSyncSizeGB is the size from which SyncImages refuses an image.
const MaxSyncSizeGB = 50

// rules are the limits SyncImages shares with the other providers, in Tencent's words.
var rules = domain.CopyRules{
	SameRegion: "the destination is the image's own region; SyncImages copies a custom image to other regions only",
	Encrypted:  "the image is encrypted; Tencent Cloud cannot sync encrypted images to another region",
	MaxSizeGB:  MaxSyncSizeGB - 1,
	TooLarge:   fmt.Sprintf("Tencent Cloud SyncImages copies only images smaller than %d GB", MaxSyncSizeGB),
}

// KnownRegions are the Tencent Cloud regions with CVM, as the SDK's region list has them.
func KnownRegions() []string {
	return []string{
		"ap-bangkok", "ap-beijing", "ap-chengdu", "ap-chongqing", "ap-guangzhou", "ap-hongkong",
		"ap-jakarta", "ap-mumbai", "ap-nanjing", "ap-seoul", "ap-shanghai", "ap-shanghai-fsi",
		"ap-shenzhen-fsi", "ap-singapore", "ap-tokyo", "eu-frankfurt", "na-ashburn",
		"na-siliconvalley", "sa-saopaulo",
	}
}

// Checker checks copies against SyncImages' limits. It is immutable and safe for concurrent
// use.
type Checker struct {
	regions []string
}

// New returns a checker that knows regions (sorted, without repeats); empty means
// KnownRegions.
func New(regions []string) *Checker {
	regions = slices.Clone(regions)
	if len(regions) == 0 {
		regions = KnownRegions()
	}
	slices.Sort(regions)
	return &Checker{regions: slices.Compact(regions)}
}

// Regions returns the regions the checker knows, sorted.
func (c *Checker) Regions() []string { return slices.Clone(c.regions) }

// CheckCopy returns why src cannot be copied to region with SyncImages, or "".
func (c *Checker) CheckCopy(src domain.Source, region string) string {
	if !slices.Contains(c.regions, region) {
		return fmt.Sprintf("%q is not a Tencent Cloud region imagerelay knows", region)
	}
	return domain.CheckCommon(src, region, rules)
}
