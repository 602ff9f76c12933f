package tencentemu

import (
	"time"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

// Credential is one SecretId/SecretKey pair the emulator accepts. Token, when set, must be
// sent as X-TC-Token (temporary STS credentials).
type Credential struct {
	SecretID  string `yaml:"secretId" json:"secretId"`
	SecretKey string `yaml:"secretKey" json:"secretKey"`
	Token     string `yaml:"token,omitempty" json:"token,omitempty"`
}

// Image is a custom image the emulator starts with.
type Image struct {
	// ID is the image id, "img-" followed by 8 lowercase letters or digits.
	ID     string `yaml:"id" json:"id"`
	Name   string `yaml:"name" json:"name"`
	Region string `yaml:"region" json:"region"`
	// State is the ImageState (NORMAL, CREATING, SYNCING, CREATEFAILED, ...); default NORMAL.
	State  string `yaml:"state,omitempty" json:"state,omitempty"`
	SizeGB int    `yaml:"sizeGB,omitempty" json:"sizeGB,omitempty"`
	// Encrypted images cannot be synced to another region.
	Encrypted bool `yaml:"encrypted,omitempty" json:"encrypted,omitempty"`
	// Shared marks an image another account shared with this one: it can only be copied in
	// place (destination = source region) to become a custom image.
	Shared bool `yaml:"shared,omitempty" json:"shared,omitempty"`
	// InstanceImage marks a whole-instance image, which SyncImages refuses.
	InstanceImage bool   `yaml:"instanceImage,omitempty" json:"instanceImage,omitempty"`
	Platform      string `yaml:"platform,omitempty" json:"platform,omitempty"`
	// SyncPercent is reported by DescribeImages; the emulator fills it while a copy runs.
	SyncPercent int `yaml:"-" json:"syncPercent,omitempty"`
	// CreatedTime is when the image was made; zero means when the emulator started.
	CreatedTime time.Time `yaml:"createdTime,omitempty" json:"createdTime,omitzero"`
}

// RateLimits are requests per second per action and SecretId, as Tencent documents them.
type RateLimits struct {
	SyncImages     float64 `yaml:"syncImages,omitempty" json:"syncImages,omitempty"`
	DescribeImages float64 `yaml:"describeImages,omitempty" json:"describeImages,omitempty"`
}

// Seed is the emulator's starting state and behaviour.
type Seed struct {
	Credentials []Credential `yaml:"credentials" json:"credentials"`
	// Regions are the valid region ids; empty means DefaultRegions.
	Regions []string `yaml:"regions,omitempty" json:"regions,omitempty"`
	// UnsupportedRegions are valid regions that do not take part in image sync.
	UnsupportedRegions []string `yaml:"unsupportedRegions,omitempty" json:"unsupportedRegions,omitempty"`
	Images             []Image  `yaml:"images,omitempty" json:"images,omitempty"`
	// Quota is the most custom images one region may hold; default 500.
	Quota int `yaml:"quota,omitempty" json:"quota,omitempty"`
	// CopyDuration is how long a sync takes from SYNCING 0% to NORMAL; default 3s.
	CopyDuration emucore.Duration `yaml:"copyDuration,omitempty" json:"copyDuration,omitempty"`
	// RateLimits default to 10/s SyncImages and 40/s DescribeImages.
	RateLimits RateLimits `yaml:"rateLimits,omitempty" json:"rateLimits,omitzero"`
}

// Defaults used when the seed leaves a value empty.
const (
	DefaultQuota              = 500
	DefaultCopyDuration       = 3 * time.Second
	DefaultSyncImagesRate     = 10
	DefaultDescribeImagesRate = 40
)

// DemoSecretID and DemoSecretKey are the credentials DefaultSeed accepts. They only work
// against the local emulator.
const (
	DemoSecretID  = "AKIDimagerelayDEMO"
	DemoSecretKey = "imagerelay-demo-tencent-secret"
)

// DefaultRegions is a realistic list of Tencent Cloud CVM regions.
func DefaultRegions() []string {
	return []string{
		"ap-guangzhou", "ap-shanghai", "ap-nanjing", "ap-beijing", "ap-chengdu", "ap-chongqing",
		"ap-hongkong", "ap-singapore", "ap-jakarta", "ap-seoul", "ap-tokyo", "ap-bangkok",
		"ap-mumbai", "na-siliconvalley", "na-ashburn", "sa-saopaulo", "eu-frankfurt",
		"ap-shanghai-fsi", "ap-shenzhen-fsi",
	}
}

// DefaultSeed returns demo data: the demo credentials, the default regions (the finance
// regions do not take part in image sync), and a few images in ap-guangzhou — three NORMAL
// ones that can be copied, one encrypted, one too large (80 GB) and one still CREATING.
func DefaultSeed() Seed {
	return Seed{
		Credentials:        []Credential{{SecretID: DemoSecretID, SecretKey: DemoSecretKey}},
		Regions:            DefaultRegions(),
		UnsupportedRegions: []string{"ap-shanghai-fsi", "ap-shenzhen-fsi"},
		Images: []Image{
			{ID: "img-demo0001", Name: "web-base-2026.07", Region: "ap-guangzhou", SizeGB: 20, Platform: "TencentOS"},
			{ID: "img-demo0002", Name: "worker-base-2026.07", Region: "ap-guangzhou", SizeGB: 20, Platform: "Ubuntu"},
			{ID: "img-demo0003", Name: "win-desktop-2026.07", Region: "ap-guangzhou", SizeGB: 40, Platform: "Windows"},
			{ID: "img-demoenc1", Name: "secure-base-2026.07", Region: "ap-guangzhou", SizeGB: 20, Encrypted: true, Platform: "TencentOS"},
			{ID: "img-demobig1", Name: "data-warehouse-2026.07", Region: "ap-guangzhou", SizeGB: 80, Platform: "CentOS"},
			{ID: "img-demonew1", Name: "web-base-2026.08", Region: "ap-guangzhou", SizeGB: 20, State: "CREATING", Platform: "TencentOS"},
		},
		Quota:        DefaultQuota,
		CopyDuration: emucore.Duration(DefaultCopyDuration),
		RateLimits:   RateLimits{SyncImages: DefaultSyncImagesRate, DescribeImages: DefaultDescribeImagesRate},
	}
}
