package huaweiemu

import (
	"time"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

// Credential is one AK/SK pair the emulator accepts. Each AK is one tenant: the limit of
// concurrent cross-region copies is counted per AK.
type Credential struct {
	AK string `yaml:"ak" json:"ak"`
	SK string `yaml:"sk" json:"sk"`
}

// Image is a private image the emulator starts with.
type Image struct {
	// ID is the image id, a UUID such as "465076de-dc36-4aec-80f5-ef9d8009428f".
	ID     string `yaml:"id" json:"id"`
	Name   string `yaml:"name" json:"name"`
	Region string `yaml:"region" json:"region"`
	SizeGB int    `yaml:"sizeGB,omitempty" json:"sizeGB,omitempty"`
	// Encrypted images cannot be copied to another region.
	Encrypted bool `yaml:"encrypted,omitempty" json:"encrypted,omitempty"`
	// FromISO marks an image created from an ISO file, which IMS will not copy across regions.
	FromISO bool `yaml:"fromISO,omitempty" json:"fromISO,omitempty"`
	// OSType is Linux or Windows.
	OSType string `yaml:"osType,omitempty" json:"osType,omitempty"`
}

// Seed is the emulator's starting state and behaviour.
type Seed struct {
	Credentials []Credential `yaml:"credentials" json:"credentials"`
	// Regions are the region ids the emulator serves and accepts as copy destinations.
	Regions []string `yaml:"regions" json:"regions"`
	// Projects maps each region to the id of the account's project in it. The SDK sends that
	// id in the X-Project-Id header (and in the ShowJob path), which is how the emulator,
	// serving every region on one port, knows which region a call is for.
	Projects map[string]string `yaml:"projects" json:"projects"`
	Images   []Image           `yaml:"images,omitempty" json:"images,omitempty"`
	// Agencies are the IAM agency names a copy may name in agency_name.
	Agencies []string `yaml:"agencies,omitempty" json:"agencies,omitempty"`
	// CopyDuration is how long a copy takes from INIT to SUCCESS; default 3s.
	CopyDuration emucore.Duration `yaml:"copyDuration,omitempty" json:"copyDuration,omitempty"`
	// MaxConcurrentCopies is how many cross-region copies one tenant may run at once;
	// default 5, as IMS documents.
	MaxConcurrentCopies int `yaml:"maxConcurrentCopies,omitempty" json:"maxConcurrentCopies,omitempty"`
}

// Demo credentials of DefaultSeed. They are not secrets: they only open the local emulator.
const (
	DemoAK = "HWimagerelayDEMO"
	DemoSK = "imagerelay-demo-huawei-secret"
)

// Demo image ids of DefaultSeed, one per documented constraint.
const (
	DemoImageLinux     = "465076de-dc36-4aec-80f5-ef9d8009428f"
	DemoImageWindows   = "7a1c3e52-0f4b-4d8e-9a61-2b5d7c9e1f03"
	DemoImageEncrypted = "b3f0a9d2-6c1e-4f7a-8d25-9e4c1b7a3f60"
	DemoImageLarge     = "c9e27f14-3a8b-4c65-b1d0-7f2e6a9c4d18"
	DemoImageISO       = "d41f8b63-9e2c-47a0-85b3-1c6d0e7f2a95"
)

// DefaultSeed returns demo data: the demo key, six regions with their project ids, a copyable
// Linux and Windows image in cn-north-4, and one image for each constraint (encrypted, 200 GB,
// made from an ISO file).
func DefaultSeed() Seed {
	return Seed{
		Credentials: []Credential{{AK: DemoAK, SK: DemoSK}},
		Regions:     []string{"cn-north-4", "cn-east-3", "cn-south-1", "ap-southeast-1", "ap-southeast-3", "af-south-1"},
		// The same project ids as the sample imagerelay.yaml, so the demo works out of the box.
		Projects: map[string]string{
			"cn-north-4":     "0a1b2c3d4e5f6789abcdef0123456789",
			"cn-east-3":      "1a1b2c3d4e5f6789abcdef0123456789",
			"cn-south-1":     "2a1b2c3d4e5f6789abcdef0123456789",
			"ap-southeast-1": "3a1b2c3d4e5f6789abcdef0123456789",
			"ap-southeast-3": "4a1b2c3d4e5f6789abcdef0123456789",
			"af-south-1":     "5a1b2c3d4e5f6789abcdef0123456789",
		},
		Images: []Image{
			{ID: DemoImageLinux, Name: "golden-ubuntu-22.04", Region: "cn-north-4", SizeGB: 40, OSType: "Linux"},
			{ID: DemoImageWindows, Name: "golden-windows-2022", Region: "cn-north-4", SizeGB: 60, OSType: "Windows"},
			{ID: DemoImageEncrypted, Name: "finance-encrypted", Region: "cn-north-4", SizeGB: 40, Encrypted: true, OSType: "Linux"},
			{ID: DemoImageLarge, Name: "data-warehouse-200g", Region: "cn-north-4", SizeGB: 200, OSType: "Linux"},
			{ID: DemoImageISO, Name: "custom-from-iso", Region: "cn-north-4", SizeGB: 20, FromISO: true, OSType: "Linux"},
		},
		Agencies:            []string{"ims_admin_agency"},
		CopyDuration:        emucore.Duration(3 * time.Second),
		MaxConcurrentCopies: 5,
	}
}
