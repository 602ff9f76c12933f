// Package constraints holds Huawei Cloud IMS's documented limits on copying a private image
// across regions (CopyImageCrossRegion), and the names and descriptions IMS accepts, without
// the cloud SDK: fanout checks every planned region against them before any call, and links
// no SDK to do so. The huawei adapter uses the same checker and the same names.
package constraints

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// IMS limits for cross-region copies, from the CopyImageCrossRegion documentation.
const (
	// MaxImageSizeGB is the largest image IMS copies across regions.
	MaxImageSizeGB = 128
	// MaxNameLen is the longest image name, in characters.
	MaxNameLen = 128
	// MaxDescriptionLen is the longest description, in characters.
	MaxDescriptionLen = 1024
)

// Description errors, matched with errors.Is.
var (
	ErrDescriptionTooLong = errors.New("description is longer than 1024 characters")
	ErrDescriptionChars   = errors.New("description contains '<', '>', a carriage return or a line feed")
)

// rules are the limits IMS shares with the other providers, in Huawei's words.
var rules = domain.CopyRules{
	SameRegion: "the destination is the source region",
	Encrypted:  "Huawei IMS does not copy encrypted images across regions",
	MaxSizeGB:  MaxImageSizeGB,
	TooLarge:   fmt.Sprintf("Huawei IMS copies at most %d GB across regions", MaxImageSizeGB),
	FromISO:    "Huawei IMS does not copy images created from ISO files across regions",
}

// sdkRegions are the IMS regions of services/ims/v2/region in the pinned SDK (v0.1.207).
var sdkRegions = map[string]bool{
	"af-south-1": true, "cn-north-4": true, "cn-north-1": true, "cn-east-2": true, "cn-east-3": true,
	"cn-south-1": true, "cn-southwest-2": true, "ap-southeast-2": true, "ap-southeast-1": true,
	"ap-southeast-3": true, "cn-north-2": true, "cn-south-2": true, "cn-north-9": true, "la-south-2": true,
	"sa-brazil-1": true, "la-north-2": true, "na-mexico-1": true, "ap-southeast-4": true, "cn-south-4": true,
	"tr-west-1": true, "me-east-1": true, "ae-ad-1": true, "cn-east-4": true, "eu-west-101": true,
	"cn-east-5": true, "eu-west-0": true, "my-kualalumpur-1": true, "af-north-1": true, "ru-moscow-1": true,
	"ap-southeast-5": true, "cn-north-12": true, "cn-north-11": true, "cn-southwest-3": true,
}

// Checker checks copies against IMS's limits and the account's configured project ids. It
// is immutable and safe for concurrent use.
type Checker struct {
	projects map[string]string
}

// New returns a checker for an account whose project id in each region is projects[region].
// A region is known when the SDK lists it or when it has a project id.
func New(projects map[string]string) *Checker {
	c := &Checker{projects: make(map[string]string, len(projects))}
	for r, id := range projects {
		c.projects[r] = id
	}
	return c
}

// CheckCopy returns why src cannot be copied to region by IMS, or "" when it can. It checks
// IMS's documented limits and the configuration: both regions need a project id, and the
// copy's name and description must be acceptable.
func (c *Checker) CheckCopy(src domain.Source, region string) string {
	if _, configured := c.projects[region]; !sdkRegions[region] && !configured {
		return fmt.Sprintf("Huawei IMS has no region %q", region)
	}
	if why := domain.CheckCommon(src, region, rules); why != "" {
		return why
	}
	for _, r := range []string{src.SourceRegion, region} {
		if c.projects[r] == "" {
			return fmt.Sprintf("no Huawei project id is configured for region %s (huawei.projects.%s)", r, r)
		}
	}
	if err := checkName(SanitizeName(domain.CopyName(domain.Copy{Image: src.Image, DestinationRegion: region}))); err != nil {
		return err.Error()
	}
	if err := CheckDescription(Description(src.Image)); err != nil {
		return err.Error()
	}
	return ""
}

// CheckDescription reports whether IMS accepts s as a copy's description: at most 1024
// characters, without '<', '>', carriage returns or line feeds.
func CheckDescription(s string) error {
	if utf8.RuneCountInString(s) > MaxDescriptionLen {
		return ErrDescriptionTooLong
	}
	if strings.ContainsAny(s, "<>\r\n") {
		return ErrDescriptionChars
	}
	return nil
}

// SanitizeDescription makes s acceptable to CheckDescription: forbidden characters become
// spaces and the text is cut to 1024 characters.
func SanitizeDescription(s string) string {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '<', '>', '\r', '\n':
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > MaxDescriptionLen {
		s = string([]rune(s)[:MaxDescriptionLen])
	}
	return s
}

// Description is what a copy of img is described as: where it came from, so an operator
// looking at the IMS console can tell.
func Description(img domain.Image) string {
	d := "imagerelay copy of " + img.ImageID
	if img.ImageName != "" {
		d += " (" + img.ImageName + ")"
	}
	return SanitizeDescription(d + " from " + img.SourceRegion)
}

// SanitizeName makes name acceptable as an IMS image name: characters other than letters,
// digits, spaces, '-', '_' and '.' become '-', surrounding spaces go, and the result is cut to
// 128 characters. It is deterministic, so a start and a later lookup agree on a copy's name.
func SanitizeName(name string) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(" -_.", r) {
			return r
		}
		return '-'
	}, name)
	name = strings.TrimSpace(name)
	if utf8.RuneCountInString(name) > MaxNameLen {
		name = strings.TrimSpace(string([]rune(name)[:MaxNameLen]))
	}
	return name
}

func checkName(name string) error {
	if n := utf8.RuneCountInString(name); n == 0 || n > MaxNameLen {
		return fmt.Errorf("copy name %q must be 1 to %d characters", name, MaxNameLen)
	}
	return nil
}
