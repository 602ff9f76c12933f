// Package policy decides which images a replication or rebuild policy applies to. It is pure:
// no I/O, no configuration loading, only the matching rules, so the function cores, the
// configuration validator and the CLI ("why did my image not replicate?") share one answer.
package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/imagerelay/imagerelay/events"
)

// Match selects images. Every empty field matches anything, so the zero Match selects every
// image; a set field narrows the selection and all set fields must hold.
type Match struct {
	// Provider is the image's provider (alibaba, tencent or huawei).
	Provider string `yaml:"provider,omitempty" json:"provider,omitempty"`
	// ProductType is Alibaba's product type (CloudDesktop, CloudApp, WuyingServer).
	ProductType string `yaml:"productType,omitempty" json:"productType,omitempty"`
	// Tags must all be present on the image with exactly these values. A tag the image has
	// but the policy does not name is ignored.
	Tags map[string]string `yaml:"tags,omitempty" json:"tags,omitempty"`
	// NamePattern is matched against the image's name with path.Match syntax ("win-*",
	// "office-202?-*"). Note that "*" does not cross "/".
	NamePattern string `yaml:"namePattern,omitempty" json:"namePattern,omitempty"`
}

// Matches reports whether the image, with its tags, is selected by m. A malformed NamePattern
// matches nothing; configuration validation rejects such patterns before they get here.
func (m Match) Matches(img events.Image, tags map[string]string) bool {
	return len(m.mismatches(img, tags)) == 0
}

// Explain says in plain words why the image is not selected by m, one reason per failed
// condition joined by "; " (for example `tag env is "dev", policy wants "prod"`). It returns
// the empty string when the image matches.
func (m Match) Explain(img events.Image, tags map[string]string) string {
	return strings.Join(m.mismatches(img, tags), "; ")
}

// mismatches lists every failed condition, in a stable order (fields, then tags by key), so
// that explanations are reproducible in logs and tests.
func (m Match) mismatches(img events.Image, tags map[string]string) []string {
	var why []string
	if m.Provider != "" && img.Provider != m.Provider {
		why = append(why, fmt.Sprintf("provider is %q, policy wants %q", img.Provider, m.Provider))
	}
	if m.ProductType != "" && img.ProductType != m.ProductType {
		if img.ProductType == "" {
			why = append(why, fmt.Sprintf("image has no product type, policy wants %q", m.ProductType))
		} else {
			why = append(why, fmt.Sprintf("product type is %q, policy wants %q", img.ProductType, m.ProductType))
		}
	}
	keys := make([]string, 0, len(m.Tags))
	for k := range m.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		want := m.Tags[k]
		got, ok := tags[k]
		switch {
		case !ok:
			why = append(why, fmt.Sprintf("image has no tag %s, policy wants %q", k, want))
		case got != want:
			why = append(why, fmt.Sprintf("tag %s is %q, policy wants %q", k, got, want))
		}
	}
	if m.NamePattern != "" {
		ok, err := path.Match(m.NamePattern, img.ImageName)
		switch {
		case err != nil:
			why = append(why, fmt.Sprintf("name pattern %q is malformed", m.NamePattern))
		case !ok:
			why = append(why, fmt.Sprintf("name %q does not match pattern %q", img.ImageName, m.NamePattern))
		}
	}
	return why
}

// IsZero reports whether m has no condition, i.e. it selects every image.
func (m Match) IsZero() bool {
	return m.Provider == "" && m.ProductType == "" && len(m.Tags) == 0 && m.NamePattern == ""
}

// ValidPattern reports whether p is a well-formed path.Match pattern; the error is
// path.ErrBadPattern when it is not.
func ValidPattern(p string) error {
	// path.Match checks the whole pattern for syntax before answering, even when the name
	// does not match, so matching against the empty name is a complete syntax check.
	_, err := path.Match(p, "")
	return err
}
