package domain

import "fmt"

// CopyRules are the limits every provider documents in the same terms (copies to the source
// region, encrypted images, a largest size, images made from ISO files), with the words each
// provider's skip reasons use. A provider checks its own regions first, then CheckCommon, then
// its own rules.
type CopyRules struct {
	// SameRegion is the reason given for a copy to the image's own region.
	SameRegion string
	// Encrypted is the reason given for an encrypted image; empty means encrypted images may
	// be copied.
	Encrypted string
	// MaxSizeGB is the largest image, in GB, the provider copies; 0 means no limit.
	MaxSizeGB int
	// TooLarge completes "the image is N GB; " for an image above MaxSizeGB.
	TooLarge string
	// FromISO is the reason given for an image made from an ISO file; empty means such
	// images may be copied.
	FromISO string
}

// CheckCommon returns why src cannot be copied to region under rules, or "" when these rules
// allow it. It checks, in order: the source region, encryption, size, ISO origin.
func CheckCommon(src Source, region string, rules CopyRules) string {
	switch {
	case region == src.SourceRegion:
		return rules.SameRegion
	case src.Encrypted && rules.Encrypted != "":
		return rules.Encrypted
	case rules.MaxSizeGB > 0 && src.SizeGB > rules.MaxSizeGB:
		return fmt.Sprintf("the image is %d GB; %s", src.SizeGB, rules.TooLarge)
	case src.FromISO && rules.FromISO != "":
		return rules.FromISO
	}
	return ""
}
