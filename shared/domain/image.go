package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// Image names one image (or one version of it) at a provider. Its fields and JSON names are
// those of the event contract's image, so that a core converts one into the other with a
// plain type conversion and stored records keep their JSON.
type Image struct {
	// Provider is the cloud that holds the image (tencent, alibaba, huawei).
	Provider string `json:"provider"`
	// Account names the cloud account (tenant) the image belongs to: a label chosen by the
	// operator, never a credential; empty means "default".
	Account string `json:"account,omitempty"`
	// ImageID is the provider's id of the source image.
	ImageID string `json:"imageId"`
	// VersionID is the image version (Alibaba App Streaming "iv-..."); empty where the
	// provider has no versions.
	VersionID string `json:"versionId,omitempty"`
	// ImageName is the source image's display name.
	ImageName string `json:"imageName,omitempty"`
	// SourceRegion is the region that holds the source image.
	SourceRegion string `json:"sourceRegion"`
	// ProductType is Alibaba's product type (CloudDesktop, CloudApp, WuyingServer).
	ProductType string `json:"productType,omitempty"`
}

// Key is the identity of one image version across its destinations:
// provider/account/image/version, with account "default" and version "-" when empty. It is
// the event contract's image key, character for character.
func (i Image) Key() string {
	return strings.Join(i.KeyParts(), "/")
}

// KeyParts are the parts of [Image.Key]: provider, account, image, version, with the same
// defaults. Stores build their keys from them.
func (i Image) KeyParts() []string {
	account, version := i.Account, i.VersionID
	if account == "" {
		account = "default"
	}
	if version == "" {
		version = "-"
	}
	return []string{i.Provider, account, i.ImageID, version}
}

// Copy is one image copied to one destination region: what a record, a task and a key are
// about.
type Copy struct {
	Image
	// DestinationRegion is where the copy goes.
	DestinationRegion string `json:"destinationRegion"`
}

// Key is the identity of one copy: provider/account/image/version/region. It is the event
// contract's replication key, character for character, because records, message ids and
// copy names are derived from it and must survive an upgrade.
func (c Copy) Key() string {
	return strings.Join(c.KeyParts(), "/")
}

// KeyParts are the parts of [Copy.Key]: the image's key parts and the destination region.
func (c Copy) KeyParts() []string { return append(c.Image.KeyParts(), c.DestinationRegion) }

// Source is an image with the attributes that decide whether a provider may copy it.
type Source struct {
	Image
	// SizeGB is the image size in GiB.
	SizeGB int `json:"sizeGB,omitempty"`
	// Encrypted is true for an encrypted image; most providers refuse to copy those.
	Encrypted bool `json:"encrypted,omitempty"`
	// FromISO is true for an image created from an ISO file (Huawei refuses those).
	FromISO bool `json:"fromISO,omitempty"`
}

// MaxCopyNameLen is the longest name CopyName returns, in characters: Tencent's ImageName
// limit (60 characters), the strictest of the providers that name copies (Huawei IMS allows
// 128; Alibaba's distribution keeps the image's own name).
const MaxCopyNameLen = 60

// CopyName returns the deterministic name of a copy: the same copy is always named the same
// way, so a restarted worker can find it at the provider. The name is valid UTF-8 and at most
// MaxCopyNameLen characters: a long image name is cut by characters, never inside one, so the
// name sent at the start and the name looked for after a crash are the same string (a name
// cut inside a character was mangled on the wire and never found again).
//
// The names of copies in flight are how they are found again, so this function must return
// exactly what earlier versions returned; a test holds it to the event contract's id
// derivation.
func CopyName(c Copy) string {
	base := c.ImageName
	if base == "" {
		base = c.ImageID
	}
	// An invalid byte would be replaced by each JSON encoder on its way; replace it here,
	// deterministically, so every call site sends and looks for the same name.
	base = strings.ToValidUTF8(base, "-")
	suffix := "-ir-" + deriveID(c.Key(), "copy")[:8]
	// The suffix must survive truncation: it is what makes the name unique per copy.
	if keep := MaxCopyNameLen - utf8.RuneCountInString(suffix); utf8.RuneCountInString(base) > keep {
		base = string([]rune(base)[:keep])
	}
	return base + suffix
}

// deriveID is the event contract's id derivation (events.DeriveID) without parts: the hex of
// the first 16 bytes of SHA-256 over cause, a zero byte and kind. It is repeated here so the
// domain does not import the wire types; a test compares the two.
func deriveID(cause, kind string) string {
	h := sha256.New()
	h.Write([]byte(cause))
	h.Write([]byte{0})
	h.Write([]byte(kind))
	return hex.EncodeToString(h.Sum(nil)[:16])
}
