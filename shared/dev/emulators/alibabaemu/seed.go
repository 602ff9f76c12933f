package alibabaemu

import (
	"time"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

// Credential is one AccessKey pair the emulator accepts.
type Credential struct {
	AccessKeyID     string `yaml:"accessKeyId" json:"accessKeyId"`
	AccessKeySecret string `yaml:"accessKeySecret" json:"accessKeySecret"`
	// SecurityToken, when set, marks the pair as temporary STS credentials: every request
	// must carry this token (x-acs-security-token, or SecurityToken in the v2 form).
	SecurityToken string `yaml:"securityToken,omitempty" json:"securityToken,omitempty"`
	// Denied lists RAM actions this key may not call ("appstreaming:ListImage",
	// "ecd:RebuildDesktops", or "*" for all); such calls get 403 Forbidden.RAM.
	Denied []string `yaml:"denied,omitempty" json:"denied,omitempty"`
}

// AppImage is one version of a WUYING (App Streaming / cloud desktop) image. Several entries
// with the same ImageID are versions of one image; the last one is the latest.
type AppImage struct {
	// ImageID is "imgc-" followed by lowercase letters and digits.
	ImageID string `yaml:"imageId" json:"imageId"`
	Name    string `yaml:"name" json:"name"`
	// VersionID is "iv-" followed by lowercase letters and digits.
	VersionID string `yaml:"versionId" json:"versionId"`
	// ProductType is CloudApp, CloudDesktop or WuyingServer; default CloudApp.
	ProductType string `yaml:"productType,omitempty" json:"productType,omitempty"`
	// Status is the image status: AVAILABLE (default), INIT, CREATING, CREATE_FAILED or
	// DELETING. Only AVAILABLE images can be distributed.
	Status string `yaml:"status,omitempty" json:"status,omitempty"`
	// ImageType is User (default), Shared, System or Community. Only User images can be
	// distributed.
	ImageType string `yaml:"imageType,omitempty" json:"imageType,omitempty"`
	// OSType is Windows (default) or Linux; GPU marks a graphics image. Both matter when an
	// Ecd desktop is rebuilt onto this image.
	OSType string `yaml:"osType,omitempty" json:"osType,omitempty"`
	GPU    bool   `yaml:"gpu,omitempty" json:"gpu,omitempty"`
	// Encrypted images cannot be distributed (ImageDistribute.ImageNotSupport).
	Encrypted bool `yaml:"encrypted,omitempty" json:"encrypted,omitempty"`
	// Regions are where this version already is (AVAILABLE) when the emulator starts.
	Regions []string          `yaml:"regions,omitempty" json:"regions,omitempty"`
	Tags    map[string]string `yaml:"tags,omitempty" json:"tags,omitempty"`
	// ParentImageID names the image this one was derived from; it must already be in every
	// destination region (else ParentImageRegionDistribute.NotExist).
	ParentImageID string `yaml:"parentImageId,omitempty" json:"parentImageId,omitempty"`
	// NonCentralized marks a legacy regional image, which cannot be distributed
	// (Instance.ImageUnsupported).
	NonCentralized bool `yaml:"nonCentralized,omitempty" json:"nonCentralized,omitempty"`
	// PackageType is Ecs (default), Vhd or Container; Vhd and Container images need a
	// BaseImageID before they can be distributed (InvalidBaseImage.NotConfigured).
	PackageType string `yaml:"packageType,omitempty" json:"packageType,omitempty"`
	BaseImageID string `yaml:"baseImageId,omitempty" json:"baseImageId,omitempty"`
}

// AppStreamSeed is the starting state of the AppstreamCenter (2021-09-01) product.
type AppStreamSeed struct {
	// Regions are the valid WUYING region ids; empty means DefaultAppStreamRegions.
	Regions []string   `yaml:"regions,omitempty" json:"regions,omitempty"`
	Images  []AppImage `yaml:"images,omitempty" json:"images,omitempty"`
	// CopyDuration is how long one region's distribution takes from INIT 0% to AVAILABLE
	// 100%; default DefaultCopyDuration.
	CopyDuration emucore.Duration `yaml:"copyDuration,omitempty" json:"copyDuration,omitempty"`
	// MaxConcurrentDistributions caps the region distributions in flight per account
	// (ExceedBuilderQuota beyond it); 0 means no cap.
	MaxConcurrentDistributions int `yaml:"maxConcurrentDistributions,omitempty" json:"maxConcurrentDistributions,omitempty"`
}

// Desktop is one Elastic Desktop Service cloud computer.
type Desktop struct {
	// DesktopID is "ecd-" followed by lowercase letters and digits.
	DesktopID string `yaml:"desktopId" json:"desktopId"`
	Region    string `yaml:"region" json:"region"`
	Name      string `yaml:"name,omitempty" json:"name,omitempty"`
	// Status is Pending, Starting, Running (default), Stopping, Stopped, Rebuilding, Expired
	// or Deleted. Only Running and Stopped desktops can be rebuilt.
	Status  string `yaml:"status,omitempty" json:"status,omitempty"`
	ImageID string `yaml:"imageId" json:"imageId"`
	// OSType is Windows (default) or Linux.
	OSType string `yaml:"osType,omitempty" json:"osType,omitempty"`
	// GPU marks a graphics desktop, which only takes GPU images.
	GPU bool `yaml:"gpu,omitempty" json:"gpu,omitempty"`
	// DataDisk is true when the desktop has a data disk besides its system disk.
	DataDisk bool              `yaml:"dataDisk,omitempty" json:"dataDisk,omitempty"`
	GroupID  string            `yaml:"groupId,omitempty" json:"groupId,omitempty"`
	Tags     map[string]string `yaml:"tags,omitempty" json:"tags,omitempty"`
}

// EcdImage is an Elastic Desktop Service image ("m-...") in one region. Desktops can also be
// rebuilt onto an AppImage once it is AVAILABLE in the desktop's region.
type EcdImage struct {
	ID     string `yaml:"id" json:"id"`
	Region string `yaml:"region" json:"region"`
	Name   string `yaml:"name,omitempty" json:"name,omitempty"`
	// OSType is Windows (default) or Linux.
	OSType string `yaml:"osType,omitempty" json:"osType,omitempty"`
	GPU    bool   `yaml:"gpu,omitempty" json:"gpu,omitempty"`
}

// EcdSeed is the starting state of the Ecd (2020-09-30) product.
type EcdSeed struct {
	// Regions are the valid Ecd region ids besides those the desktops and images name;
	// when all are empty, DefaultEcdRegions.
	Regions  []string   `yaml:"regions,omitempty" json:"regions,omitempty"`
	Desktops []Desktop  `yaml:"desktops,omitempty" json:"desktops,omitempty"`
	Images   []EcdImage `yaml:"images,omitempty" json:"images,omitempty"`
	// RebuildDuration is how long a desktop stays Rebuilding; default DefaultRebuildDuration.
	RebuildDuration emucore.Duration `yaml:"rebuildDuration,omitempty" json:"rebuildDuration,omitempty"`
}

// RateLimits are requests per second per action and AccessKeyId. Alibaba does not publish
// these quotas for the two products, so the defaults are assumptions.
type RateLimits struct {
	StartTaskForDistributeImage float64 `yaml:"startTaskForDistributeImage,omitempty" json:"startTaskForDistributeImage,omitempty"`
	ListImage                   float64 `yaml:"listImage,omitempty" json:"listImage,omitempty"`
	RebuildDesktops             float64 `yaml:"rebuildDesktops,omitempty" json:"rebuildDesktops,omitempty"`
	DescribeDesktops            float64 `yaml:"describeDesktops,omitempty" json:"describeDesktops,omitempty"`
}

// Seed is the emulator's starting state and behaviour.
type Seed struct {
	Credentials []Credential  `yaml:"credentials" json:"credentials"`
	AppStream   AppStreamSeed `yaml:"appStream" json:"appStream"`
	Ecd         EcdSeed       `yaml:"ecd" json:"ecd"`
	RateLimits  RateLimits    `yaml:"rateLimits,omitempty" json:"rateLimits,omitzero"`
	// ThrottleRetryAfter is what a throttled answer puts in x-acs-retry-after (the SDK reads
	// it as milliseconds) when an injected fault throttles; default DefaultThrottleRetryAfter.
	ThrottleRetryAfter emucore.Duration `yaml:"throttleRetryAfter,omitempty" json:"throttleRetryAfter,omitempty"`
}

// Defaults used when the seed leaves a value empty.
const (
	DefaultCopyDuration       = 3 * time.Second
	DefaultRebuildDuration    = 3 * time.Second
	DefaultThrottleRetryAfter = time.Second
	DefaultDistributeRate     = 10
	DefaultListImageRate      = 50
	DefaultRebuildRate        = 10
	DefaultDescribeRate       = 50
)

// DemoAccessKeyID and DemoAccessKeySecret are the credentials DefaultSeed accepts. They only
// work against the local emulator.
const (
	DemoAccessKeyID     = "LTAIimagerelayDEMO"
	DemoAccessKeySecret = "imagerelay-demo-alibaba-secret"
)

// DefaultAppStreamRegions are WUYING regions the App Streaming image center serves.
func DefaultAppStreamRegions() []string {
	return []string{"cn-shanghai", "cn-hangzhou", "cn-beijing", "cn-shenzhen", "cn-hongkong", "ap-southeast-1"}
}

// DefaultEcdRegions are Elastic Desktop Service regions.
func DefaultEcdRegions() []string {
	return []string{"cn-shanghai", "cn-hangzhou", "cn-beijing", "cn-shenzhen", "cn-hongkong", "ap-southeast-1"}
}

// DefaultSeed returns demo data: the demo credentials; WUYING images in cn-shanghai (desktop
// and app images that can be distributed, one encrypted, one still being created, one
// already in cn-hangzhou); and an Ecd fleet of eight desktops in cn-shanghai (running,
// stopped, one pending, one GPU, some with data disks, two desktop groups), two in
// cn-hongkong, where a rebuild may not change the operating system, and eight in cn-beijing
// for the demo's rebuild rollout (seven of team design: five Windows desktops it rebuilds,
// a GPU desktop and a Linux desktop with a data disk it must skip; one of team finance it
// must not touch).
func DefaultSeed() Seed {
	sh := []string{"cn-shanghai"}
	return Seed{
		Credentials: []Credential{{AccessKeyID: DemoAccessKeyID, AccessKeySecret: DemoAccessKeySecret}},
		AppStream: AppStreamSeed{
			Regions: DefaultAppStreamRegions(),
			Images: []AppImage{
				{ImageID: "imgc-demodesk0001", Name: "dev-desktop-2026.07", VersionID: "iv-demodesk0001", ProductType: "CloudDesktop", Regions: sh, Tags: map[string]string{"team": "dev"}},
				{ImageID: "imgc-demolnx00001", Name: "linux-desktop-2026.07", VersionID: "iv-demolnx00001", ProductType: "CloudDesktop", OSType: "Linux", Regions: sh},
				{ImageID: "imgc-demogpu00001", Name: "render-desktop-2026.07", VersionID: "iv-demogpu00001", ProductType: "CloudDesktop", GPU: true, Regions: sh},
				{ImageID: "imgc-demoapp00001", Name: "office-apps-2026.07", VersionID: "iv-demoapp00001", ProductType: "CloudApp", Regions: sh},
				{ImageID: "imgc-demoenc00001", Name: "secure-desktop-2026.07", VersionID: "iv-demoenc00001", ProductType: "CloudDesktop", Encrypted: true, Regions: sh},
				{ImageID: "imgc-demonew00001", Name: "dev-desktop-2026.08", VersionID: "iv-demonew00001", ProductType: "CloudDesktop", Status: "CREATING", Regions: sh},
				{ImageID: "imgc-demomulti001", Name: "ops-desktop-2026.07", VersionID: "iv-demomulti001", ProductType: "CloudDesktop", Regions: []string{"cn-shanghai", "cn-hangzhou"}},
			},
			CopyDuration: emucore.Duration(DefaultCopyDuration),
		},
		Ecd: EcdSeed{
			Regions: DefaultEcdRegions(),
			Images: []EcdImage{
				{ID: "m-demowin000001", Region: "cn-shanghai", Name: "win-desktop-2026.06"},
				{ID: "m-demowin000002", Region: "cn-shanghai", Name: "win-desktop-2026.07"},
				{ID: "m-demolnx000001", Region: "cn-shanghai", Name: "ubuntu-desktop-2026.07", OSType: "Linux"},
				{ID: "m-demogpu000001", Region: "cn-shanghai", Name: "gpu-desktop-2026.07", GPU: true},
				{ID: "m-demohkw000001", Region: "cn-hongkong", Name: "win-desktop-hk-2026.07"},
				{ID: "m-demohkl000001", Region: "cn-hongkong", Name: "ubuntu-desktop-hk-2026.07", OSType: "Linux"},
				{ID: "m-demobjw000001", Region: "cn-beijing", Name: "win-desktop-bj-2026.06"},
				{ID: "m-demobjl000001", Region: "cn-beijing", Name: "ubuntu-desktop-bj-2026.06", OSType: "Linux"},
				{ID: "m-demobjg000001", Region: "cn-beijing", Name: "gpu-desktop-bj-2026.06", GPU: true},
			},
			Desktops: []Desktop{
				{DesktopID: "ecd-demo000001", Region: "cn-shanghai", Name: "dev-01", Status: "Running", ImageID: "m-demowin000001", GroupID: "dg-demodev01", DataDisk: true, Tags: map[string]string{"team": "dev", "ring": "canary"}},
				{DesktopID: "ecd-demo000002", Region: "cn-shanghai", Name: "dev-02", Status: "Running", ImageID: "m-demowin000001", GroupID: "dg-demodev01", DataDisk: true, Tags: map[string]string{"team": "dev"}},
				{DesktopID: "ecd-demo000003", Region: "cn-shanghai", Name: "dev-03", Status: "Stopped", ImageID: "m-demowin000001", GroupID: "dg-demodev01", Tags: map[string]string{"team": "dev"}},
				{DesktopID: "ecd-demo000004", Region: "cn-shanghai", Name: "dev-04", Status: "Running", ImageID: "m-demowin000001", GroupID: "dg-demodev01", Tags: map[string]string{"team": "dev"}},
				{DesktopID: "ecd-demo000005", Region: "cn-shanghai", Name: "ops-01", Status: "Running", ImageID: "m-demolnx000001", OSType: "Linux", GroupID: "dg-demoops01", DataDisk: true, Tags: map[string]string{"team": "ops"}},
				{DesktopID: "ecd-demo000006", Region: "cn-shanghai", Name: "ops-02", Status: "Stopped", ImageID: "m-demolnx000001", OSType: "Linux", GroupID: "dg-demoops01", Tags: map[string]string{"team": "ops"}},
				{DesktopID: "ecd-demo000007", Region: "cn-shanghai", Name: "render-01", Status: "Running", ImageID: "m-demogpu000001", GPU: true, Tags: map[string]string{"team": "design"}},
				{DesktopID: "ecd-demo000008", Region: "cn-shanghai", Name: "dev-05", Status: "Pending", ImageID: "m-demowin000001", GroupID: "dg-demodev01", Tags: map[string]string{"team": "dev"}},
				{DesktopID: "ecd-demohk0001", Region: "cn-hongkong", Name: "hk-01", Status: "Running", ImageID: "m-demohkw000001", DataDisk: true, Tags: map[string]string{"team": "dev"}},
				{DesktopID: "ecd-demohk0002", Region: "cn-hongkong", Name: "hk-02", Status: "Stopped", ImageID: "m-demohkw000001", Tags: map[string]string{"team": "dev"}},
				{DesktopID: "ecd-demobj0001", Region: "cn-beijing", Name: "design-01", Status: "Running", ImageID: "m-demobjw000001", GroupID: "dg-demobjdesign", DataDisk: true, Tags: map[string]string{"team": "design"}},
				{DesktopID: "ecd-demobj0002", Region: "cn-beijing", Name: "design-02", Status: "Running", ImageID: "m-demobjw000001", GroupID: "dg-demobjdesign", Tags: map[string]string{"team": "design"}},
				{DesktopID: "ecd-demobj0003", Region: "cn-beijing", Name: "design-03", Status: "Stopped", ImageID: "m-demobjw000001", GroupID: "dg-demobjdesign", Tags: map[string]string{"team": "design"}},
				{DesktopID: "ecd-demobj0004", Region: "cn-beijing", Name: "design-04", Status: "Running", ImageID: "m-demobjw000001", GroupID: "dg-demobjdesign", DataDisk: true, Tags: map[string]string{"team": "design"}},
				{DesktopID: "ecd-demobj0005", Region: "cn-beijing", Name: "design-05", Status: "Running", ImageID: "m-demobjw000001", GroupID: "dg-demobjdesign", Tags: map[string]string{"team": "design"}},
				{DesktopID: "ecd-demobj0006", Region: "cn-beijing", Name: "design-render", Status: "Running", ImageID: "m-demobjg000001", GPU: true, Tags: map[string]string{"team": "design"}},
				{DesktopID: "ecd-demobj0007", Region: "cn-beijing", Name: "design-linux", Status: "Running", ImageID: "m-demobjl000001", OSType: "Linux", DataDisk: true, Tags: map[string]string{"team": "design"}},
				{DesktopID: "ecd-demobj0008", Region: "cn-beijing", Name: "finance-01", Status: "Running", ImageID: "m-demobjw000001", Tags: map[string]string{"team": "finance"}},
			},
			RebuildDuration: emucore.Duration(DefaultRebuildDuration),
		},
		RateLimits: RateLimits{
			StartTaskForDistributeImage: DefaultDistributeRate,
			ListImage:                   DefaultListImageRate,
			RebuildDesktops:             DefaultRebuildRate,
			DescribeDesktops:            DefaultDescribeRate,
		},
		ThrottleRetryAfter: emucore.Duration(DefaultThrottleRetryAfter),
	}
}
