// Package config loads imagerelay's configuration: one YAML file (imagerelay.yaml) whose every
// scalar value can be overridden by an environment variable, validated as a whole at start so
// that every problem is reported at once, each with its file, line, column and fix.
//
// Credentials are deliberately absent: each cloud's client reads its own environment variables
// (TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY, ALIBABA_CLOUD_ACCESS_KEY_ID/
// ALIBABA_CLOUD_ACCESS_KEY_SECRET, HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK) or the function
// runtime's role, and a file that contains a credential-like key is rejected.
//
// The order of precedence is: built-in defaults, then the file, then IMAGERELAY_* variables.
package config

import (
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/rebuild/rules"
	"github.com/imagerelay/imagerelay/shared/core/policy"
)

// Config is the whole configuration. The zero value is not usable; start from Defaults or
// one of the Load functions.
type Config struct {
	// NATS is the event bus: an external NATS (cluster) or the embedded server.
	NATS NATS `yaml:"nats" json:"nats"`
	// Providers holds per-cloud endpoints, account labels and rate limits (never credentials).
	Providers Providers `yaml:"providers" json:"providers"`
	// Replication says which images are copied to which regions.
	Replication Replication `yaml:"replication" json:"replication"`
	// Rebuild says which cloud desktops are rebuilt onto a new copy; off unless a policy is set.
	Rebuild Rebuild `yaml:"rebuild" json:"rebuild"`
	// Log configures logging.
	Log Log `yaml:"log" json:"log"`

	// src remembers where the configuration came from, so that problems found after decoding
	// (and by callers, through ErrorAt) can point at a line.
	src *source
}

// NATS configures the event bus.
type NATS struct {
	// URL is the NATS server URL (or a comma-separated list of a cluster's URLs). Empty runs
	// the embedded server inside `imagerelay up`.
	URL string `yaml:"url" json:"url,omitempty"`
	// CredsFile is a NATS credentials (.creds) file for an external server; the file holds a
	// JWT and an nkey seed, so only its path is configured here.
	CredsFile string `yaml:"credsFile" json:"credsFile,omitempty"`
	// TLS configures TLS to an external server.
	TLS TLS `yaml:"tls" json:"tls"`
	// Listen is where the embedded server accepts clients (other programs can subscribe to the
	// events there). "" or "none" keeps it in-process only. Default "127.0.0.1:4222".
	Listen string `yaml:"listen" json:"listen"`
	// StoreDir is the embedded server's JetStream file store. Default ".imagerelay/nats".
	StoreDir string `yaml:"storeDir" json:"storeDir"`
	// SyncAlways makes the embedded server fsync every JetStream write before it acknowledges
	// it (nats-server's sync_interval: always), so an acknowledged event or claim survives an
	// OS crash or power loss, not only a process crash. Slower; default false (the server's
	// lazy fsync). An external server takes it from its own configuration (see infra/nats).
	SyncAlways bool `yaml:"syncAlways" json:"syncAlways,omitempty"`
	// Stream is the JetStream stream that holds every event. Default "IMAGERELAY".
	Stream string `yaml:"stream" json:"stream"`
	// Replicas is the stream's replication factor: 1 for a single server, 3 in a cluster.
	// Default 1.
	Replicas int `yaml:"replicas" json:"replicas"`
	// DuplicateWindow is how long JetStream remembers event ids to drop duplicate publishes.
	// Default 10m.
	DuplicateWindow Duration `yaml:"duplicateWindow" json:"duplicateWindow"`
	// MaxAge is how long events stay in the stream. Default 168h (a week).
	MaxAge Duration `yaml:"maxAge" json:"maxAge"`
	// MaxDeliver bounds the deliveries of one failing event before it goes to the dead-letter
	// subject. Default 10.
	MaxDeliver int `yaml:"maxDeliver" json:"maxDeliver"`
	// AckWait is how long a worker may hold an event before it is redelivered. Default 30s.
	AckWait Duration `yaml:"ackWait" json:"ackWait"`
	// Backoff are the redelivery delays; JetStream allows at most MaxDeliver entries.
	// Default [1s, 5s, 30s].
	Backoff []Duration `yaml:"backoff" json:"backoff"`
	// KVBucket is the key-value bucket of replication and rebuild records. Default "imagerelay".
	KVBucket string `yaml:"kvBucket" json:"kvBucket"`
}

// TLS names the PEM files for a TLS connection to NATS. Each file must exist when set.
type TLS struct {
	// CAFile is the CA bundle that signs the server's certificate.
	CAFile string `yaml:"caFile" json:"caFile,omitempty"`
	// CertFile is the client certificate, for servers that require mutual TLS.
	CertFile string `yaml:"certFile" json:"certFile,omitempty"`
	// KeyFile is the client certificate's private key; set together with CertFile.
	KeyFile string `yaml:"keyFile" json:"keyFile,omitempty"`
}

// Embedded reports whether imagerelay runs its own NATS server (no URL configured).
func (n NATS) Embedded() bool { return n.URL == "" }

// ListenAddr returns the embedded server's client address, and false when it must not listen
// on TCP at all (Listen is "" or "none").
func (n NATS) ListenAddr() (string, bool) {
	if n.Listen == "" || n.Listen == ListenNone {
		return "", false
	}
	return n.Listen, true
}

// ListenNone is the NATS.Listen value that keeps the embedded server off the network. It
// exists because an empty environment variable cannot be told apart from an unset one.
const ListenNone = "none"

// Providers configures each cloud. Credentials are never here: see the package comment.
type Providers struct {
	// Tencent is Tencent Cloud CVM.
	Tencent Tencent `yaml:"tencent" json:"tencent"`
	// Alibaba is Alibaba Cloud App Streaming (images) and Elastic Desktop Service (desktops).
	Alibaba Alibaba `yaml:"alibaba" json:"alibaba"`
	// Huawei is Huawei Cloud IMS.
	Huawei Huawei `yaml:"huawei" json:"huawei"`
}

// Tencent configures the Tencent Cloud CVM client.
type Tencent struct {
	// Endpoint overrides the API host ("cvm.tencentcloudapi.com"), e.g. "127.0.0.1:9401" for
	// the emulator. Empty uses the SDK's default.
	Endpoint string `yaml:"endpoint" json:"endpoint,omitempty"`
	// Account labels the account in events and records (never a credential). Empty means
	// "default".
	Account string `yaml:"account" json:"account,omitempty"`
	// SyncRate is the SyncImages rate limit in requests per second. Default 10, the
	// documented limit; 0 leaves it to the provider package's default.
	SyncRate float64 `yaml:"syncRate" json:"syncRate"`
	// DescribeRate is the DescribeImages rate limit in requests per second. Default 40, the
	// documented limit; 0 leaves it to the provider package's default.
	DescribeRate float64 `yaml:"describeRate" json:"describeRate"`
}

// Alibaba configures the Alibaba Cloud clients.
type Alibaba struct {
	// Endpoint overrides the App Streaming host ("appstream-center.aliyuncs.com"). Empty uses
	// the default.
	Endpoint string `yaml:"endpoint" json:"endpoint,omitempty"`
	// EcdEndpoint overrides the Elastic Desktop Service host ("ecd.<region>.aliyuncs.com"),
	// used by rebuild. Empty uses the regional default.
	EcdEndpoint string `yaml:"ecdEndpoint" json:"ecdEndpoint,omitempty"`
	// Account labels the account in events and records (never a credential).
	Account string `yaml:"account" json:"account,omitempty"`
	// ProductType is the App Streaming product type used when listing images: CloudDesktop,
	// CloudApp or WuyingServer. Empty lists every type.
	ProductType string `yaml:"productType" json:"productType,omitempty"`
	// Rate limits Alibaba API calls per second per API; 0 leaves it to the provider package's
	// default (Alibaba does not document these limits).
	Rate float64 `yaml:"rate" json:"rate,omitempty"`
	// Regions lists the regions App Streaming serves for your account, replacing imagerelay's
	// built-in list (which fanout uses to skip unknown regions before any call). Empty keeps
	// the built-in list.
	Regions []string `yaml:"regions,omitempty" json:"regions,omitempty"`
}

// Huawei configures the Huawei Cloud IMS client.
type Huawei struct {
	// Endpoint overrides the IMS host ("https://ims.<region>.myhuaweicloud.com"), e.g.
	// "http://127.0.0.1:9403" for the emulator. Empty uses the regional default.
	Endpoint string `yaml:"endpoint" json:"endpoint,omitempty"`
	// Account labels the account in events and records (never a credential).
	Account string `yaml:"account" json:"account,omitempty"`
	// Agency is the IAM agency that lets IMS copy images on your behalf (agency_name).
	Agency string `yaml:"agency" json:"agency,omitempty"`
	// Projects maps a region id to the account's project id in that region; the Huawei SDK
	// needs it to sign requests without asking IAM first.
	Projects map[string]string `yaml:"projects,omitempty" json:"projects,omitempty"`
	// Rate limits IMS calls per second; 0 leaves it to the provider package's default (Huawei
	// does not document these limits).
	Rate float64 `yaml:"rate" json:"rate,omitempty"`
}

// Replication configures fanout, replicate and poller.
type Replication struct {
	// PollInterval is how often the poller asks about an in-flight copy. Default 30s.
	PollInterval Duration `yaml:"pollInterval" json:"pollInterval"`
	// Timeout is how long a copy may take before it is reported failed (not cancelled).
	// Default 6h.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// Policies say which images go where. An image may match several policies; fanout takes
	// the union of their regions.
	Policies []ReplicationPolicy `yaml:"policies,omitempty" json:"policies,omitempty"`
}

// ReplicationPolicy copies the images it matches to its regions.
type ReplicationPolicy struct {
	// Name identifies the policy in events and logs; unique and non-empty.
	Name string `yaml:"name" json:"name"`
	// Match selects images; empty fields match anything.
	Match policy.Match `yaml:"match" json:"match"`
	// Regions are the destination region ids (at least one).
	Regions []string `yaml:"regions" json:"regions"`
	// Timeout overrides Replication.Timeout for this policy's copies; 0 inherits it.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	// PollInterval overrides Replication.PollInterval; 0 inherits it.
	PollInterval Duration `yaml:"pollInterval" json:"pollInterval,omitempty"`
}

// TimeoutFor returns the timeout that applies to p's copies: its own or the section's.
func (r Replication) TimeoutFor(p ReplicationPolicy) time.Duration {
	if p.Timeout > 0 {
		return p.Timeout.Std()
	}
	return r.Timeout.Std()
}

// PollIntervalFor returns the poll interval that applies to p's copies.
func (r Replication) PollIntervalFor(p ReplicationPolicy) time.Duration {
	if p.PollInterval > 0 {
		return p.PollInterval.Std()
	}
	return r.PollInterval.Std()
}

// Matching returns the policies that select the image, in file order.
func (r Replication) Matching(img events.Image, tags map[string]string) []ReplicationPolicy {
	var out []ReplicationPolicy
	for _, p := range r.Policies {
		if p.Match.Matches(img, tags) {
			out = append(out, p)
		}
	}
	return out
}

// Rebuild configures the rebuild function. It does nothing unless a policy matches.
type Rebuild struct {
	// Policies say which desktops are rebuilt onto which new images.
	Policies []RebuildPolicy `yaml:"policies,omitempty" json:"policies,omitempty"`
}

// RebuildPolicy rolls the desktops it selects onto a newly replicated image: a canary first,
// then batches, stopping when failures exceed the budget.
type RebuildPolicy struct {
	// Name identifies the policy; unique and non-empty.
	Name string `yaml:"name" json:"name"`
	// Match selects the images (Alibaba only: rebuild is for Elastic Desktop Service).
	Match policy.Match `yaml:"match" json:"match"`
	// Regions limits the destination regions where desktops are rebuilt; empty means every
	// destination region of the image.
	Regions []string `yaml:"regions,omitempty" json:"regions,omitempty"`
	// Desktops selects the desktops in each region.
	Desktops DesktopSelector `yaml:"desktops" json:"desktops"`
	// Canary is how many desktops are rebuilt first, alone, before any batch. 0 skips the
	// canary. Default 1.
	Canary int `yaml:"canary" json:"canary"`
	// BatchSize is how many desktops one RebuildDesktops call names, 1..20 (the API's limit,
	// rules.MaxBatchSize).
	// Default 20.
	BatchSize int `yaml:"batchSize" json:"batchSize"`
	// FailureBudget is how many desktops may fail before the rollout stops. Default 0: stop
	// at the first failure.
	FailureBudget int `yaml:"failureBudget" json:"failureBudget"`
	// Window, when set, restricts rebuilds to a maintenance window; outside it the rollout
	// waits.
	Window *MaintenanceWindow `yaml:"window,omitempty" json:"window,omitempty"`
	// OperateType is passed to RebuildDesktops: "" keeps a data disk when the OS is unchanged,
	// "replace" replaces it.
	OperateType string `yaml:"operateType" json:"operateType,omitempty"`
	// Language is the system language for system images: en-US, zh-HK, zh-CN or ja-JP; empty
	// keeps the image's.
	Language string `yaml:"language" json:"language,omitempty"`
	// AllowDataDiskWipe must be true to rebuild a desktop whose data disk would be wiped (a
	// different OS, or OperateType "replace"); without it rebuild leaves such desktops alone.
	AllowDataDiskWipe bool `yaml:"allowDataDiskWipe" json:"allowDataDiskWipe,omitempty"`
	// DryRun plans and reports the rollout without calling RebuildDesktops.
	DryRun bool `yaml:"dryRun" json:"dryRun,omitempty"`
	// CheckInterval is how often desktop status is checked during a rollout. Default 10s.
	CheckInterval Duration `yaml:"checkInterval" json:"checkInterval"`
	// Timeout is how long one desktop may stay Rebuilding before it counts as failed
	// ("Timeout"); the desktop itself is left alone. Default 1h.
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// DesktopSelector chooses desktops. Set fields narrow the selection and all must hold; a
// selector with no field set selects every desktop in the region, so validation requires at
// least one.
type DesktopSelector struct {
	// IDs are explicit desktop ids.
	IDs []string `yaml:"ids,omitempty" json:"ids,omitempty"`
	// Tags must all be on the desktop with these values.
	Tags map[string]string `yaml:"tags,omitempty" json:"tags,omitempty"`
	// GroupID selects the desktops of one desktop group.
	GroupID string `yaml:"groupId" json:"groupId,omitempty"`
	// OlderVersionOfImage selects the desktops that run an older copy of the same source
	// image (their current image came from an earlier replication of it).
	OlderVersionOfImage bool `yaml:"olderVersionOfImage" json:"olderVersionOfImage,omitempty"`
}

// IsZero reports whether the selector sets nothing (the rebuild core's rule, which selects
// nothing then).
func (s DesktopSelector) IsZero() bool { return rules.Selector(s).IsZero() }

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level" json:"level"`
}

// Defaults returns the configuration used when nothing is configured: the embedded NATS
// server, provider SDK defaults, and no policies (nothing is replicated or rebuilt).
func Defaults() *Config {
	return &Config{
		NATS: NATS{
			Listen:          "127.0.0.1:4222",
			StoreDir:        ".imagerelay/nats",
			Stream:          "IMAGERELAY",
			Replicas:        1,
			DuplicateWindow: Duration(10 * time.Minute),
			MaxAge:          Duration(7 * 24 * time.Hour),
			MaxDeliver:      10,
			AckWait:         Duration(30 * time.Second),
			Backoff:         []Duration{Duration(time.Second), Duration(5 * time.Second), Duration(30 * time.Second)},
			KVBucket:        "imagerelay",
		},
		Providers: Providers{
			Tencent: Tencent{SyncRate: 10, DescribeRate: 40},
		},
		Replication: Replication{
			PollInterval: Duration(30 * time.Second),
			Timeout:      Duration(6 * time.Hour),
		},
		Log: Log{Level: "info"},
	}
}

// DefaultRebuildPolicy returns a rebuild policy with every default set (the rebuild core's:
// canary 1, batches of 20, stop at the first failure, status checks every 10s, 1h per
// desktop); a policy read from YAML starts from it, and so should one built in code.
func DefaultRebuildPolicy() RebuildPolicy {
	d := rules.DefaultPolicy()
	return RebuildPolicy{
		Canary:        d.Canary,
		BatchSize:     d.BatchSize,
		CheckInterval: Duration(d.CheckInterval),
		Timeout:       Duration(d.Timeout),
	}
}

// UnmarshalYAML applies the rebuild-policy defaults before decoding, so a key left out keeps
// its default while a key set to 0 (for example canary: 0) is honoured.
func (p *RebuildPolicy) UnmarshalYAML(unmarshal func(any) error) error {
	type plain RebuildPolicy // plain has no UnmarshalYAML, which avoids recursion.
	*p = DefaultRebuildPolicy()
	return unmarshal((*plain)(p))
}
