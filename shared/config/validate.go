package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/rebuild/rules"
	"github.com/imagerelay/imagerelay/shared/core/policy"
)

var (
	regionRE  = regexp.MustCompile(`^[a-z0-9-]+$`)
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`) // JetStream stream and bucket names.
	accountRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`) // Record keys use "/" and "." as separators.
	projectRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// Enumerations, exported so that CLIs and docs list the same values validation accepts.
var (
	// LogLevels are the accepted Log.Level values.
	LogLevels = []string{"debug", "info", "warn", "error"}
	// Languages are the accepted RebuildPolicy.Language values (besides "").
	Languages = []string{"en-US", "zh-HK", "zh-CN", "ja-JP"}
	// OperateTypes are the accepted RebuildPolicy.OperateType values (besides "").
	OperateTypes = []string{"replace"}
	// ProductTypes are Alibaba App Streaming's product types.
	ProductTypes = []string{"CloudDesktop", "CloudApp", "WuyingServer"}
)

// maxReplicas is JetStream's largest replication factor.
const maxReplicas = 5

// Validate checks the whole configuration and returns every problem as Errors (nil when
// there is none). Load and Parse call it; call it yourself after changing a Config in code.
// On a loaded Config the problems carry the file's lines.
func (c *Config) Validate() error {
	return c.validate()
}

// validator collects problems with their locations.
type validator struct {
	c    *Config
	errs Errors
}

func (v *validator) add(p fieldPath, kind error, problem, fix string) {
	v.errs = append(v.errs, v.c.errorAt(p, kind, problem, fix))
}

func (c *Config) validate() error {
	return c.problems().orNil()
}

// problems runs every check and returns what it found, unsorted.
func (c *Config) problems() Errors {
	v := &validator{c: c}
	v.nats(fieldPath{"nats"}, &c.NATS)
	v.providers(fieldPath{"providers"}, &c.Providers)
	v.replication(fieldPath{"replication"}, &c.Replication)
	v.rebuild(fieldPath{"rebuild"}, &c.Rebuild)
	if !slices.Contains(LogLevels, c.Log.Level) {
		v.add(fieldPath{"log", "level"}, ErrInvalid, fmt.Sprintf("%q is not a log level", c.Log.Level), "use one of "+strings.Join(LogLevels, ", "))
	}
	return v.errs
}

// inherit copies section values into policies that leave them at 0, so consumers can read a
// policy on its own.
func (c *Config) inherit() {
	for i := range c.Replication.Policies {
		p := &c.Replication.Policies[i]
		if p.Timeout == 0 {
			p.Timeout = c.Replication.Timeout
		}
		if p.PollInterval == 0 {
			p.PollInterval = c.Replication.PollInterval
		}
	}
}

func (v *validator) nats(p fieldPath, n *NATS) {
	if n.URL != "" {
		for part := range strings.SplitSeq(n.URL, ",") {
			if err := checkNATSURL(strings.TrimSpace(part)); err != nil {
				v.add(p.key("url"), ErrInvalid, err.Error(), "use nats://host:4222 (tls://host:4222 for TLS), a comma-separated list of them for a cluster, or leave url empty for the embedded server")
				break
			}
		}
	}
	v.file(p.key("credsFile"), n.CredsFile, "the NATS credentials file")
	v.file(p.key("tls").key("caFile"), n.TLS.CAFile, "the CA bundle")
	v.file(p.key("tls").key("certFile"), n.TLS.CertFile, "the client certificate")
	v.file(p.key("tls").key("keyFile"), n.TLS.KeyFile, "the client key")
	if (n.TLS.CertFile == "") != (n.TLS.KeyFile == "") {
		missing := "keyFile"
		if n.TLS.CertFile == "" {
			missing = "certFile"
		}
		v.add(p.key("tls").key(missing), ErrInvalid, "a client certificate needs both certFile and keyFile", "set tls."+missing+" too, or remove the other")
	}
	if n.Listen != "" && n.Listen != ListenNone {
		if err := checkHostPort(n.Listen); err != nil {
			v.add(p.key("listen"), ErrInvalid, err.Error(), `use host:port such as "127.0.0.1:4222", or "none" to keep the embedded server off the network`)
		}
	}
	if !n.Embedded() && n.SyncAlways {
		v.add(p.key("syncAlways"), ErrInvalid, "syncAlways only applies to the embedded server, and url names an external one",
			"set sync_interval: always in the external nats-server's configuration (see infra/nats), and remove syncAlways")
	}
	if n.Embedded() && strings.TrimSpace(n.StoreDir) == "" {
		v.add(p.key("storeDir"), ErrInvalid, "the embedded server needs a store directory", `set storeDir, e.g. ".imagerelay/nats"`)
	}
	if !nameRE.MatchString(n.Stream) {
		v.add(p.key("stream"), ErrInvalid, fmt.Sprintf("%q is not a valid stream name", n.Stream), "use letters, digits, _ and - only, e.g. IMAGERELAY")
	}
	if !nameRE.MatchString(n.KVBucket) {
		v.add(p.key("kvBucket"), ErrInvalid, fmt.Sprintf("%q is not a valid bucket name", n.KVBucket), "use letters, digits, _ and - only, e.g. imagerelay")
	}
	if n.Replicas < 1 || n.Replicas > maxReplicas {
		v.add(p.key("replicas"), ErrInvalid, fmt.Sprintf("replicas is %d; JetStream keeps 1 to %d copies", n.Replicas, maxReplicas), "use 1 for a single server, 3 for a cluster")
	}
	v.positive(p.key("duplicateWindow"), n.DuplicateWindow, "10m")
	v.positive(p.key("maxAge"), n.MaxAge, "168h")
	if n.DuplicateWindow > 0 && n.MaxAge > 0 && n.DuplicateWindow > n.MaxAge {
		v.add(p.key("duplicateWindow"), ErrInvalid, fmt.Sprintf("duplicateWindow %s is longer than maxAge %s", n.DuplicateWindow, n.MaxAge), "JetStream needs duplicateWindow ≤ maxAge; shorten duplicateWindow")
	}
	if n.MaxDeliver < 1 {
		v.add(p.key("maxDeliver"), ErrInvalid, fmt.Sprintf("maxDeliver is %d", n.MaxDeliver), "use at least 1 (default 10)")
	}
	v.positive(p.key("ackWait"), n.AckWait, "30s")
	for i, d := range n.Backoff {
		v.positive(p.key("backoff").index(i), d, "5s")
	}
	if n.MaxDeliver >= 1 && len(n.Backoff) > n.MaxDeliver {
		v.add(p.key("backoff"), ErrInvalid, fmt.Sprintf("%d backoff delays but maxDeliver is %d", len(n.Backoff), n.MaxDeliver),
			fmt.Sprintf("JetStream allows at most maxDeliver delays: drop %d of them or raise maxDeliver to %d", len(n.Backoff)-n.MaxDeliver, len(n.Backoff)))
	}
}

func (v *validator) providers(p fieldPath, pr *Providers) {
	t := p.key("tencent")
	v.account(t.key("account"), pr.Tencent.Account)
	v.rate(t.key("syncRate"), pr.Tencent.SyncRate)
	v.rate(t.key("describeRate"), pr.Tencent.DescribeRate)

	a := p.key("alibaba")
	v.account(a.key("account"), pr.Alibaba.Account)
	v.rate(a.key("rate"), pr.Alibaba.Rate)
	v.regions(a.key("regions"), pr.Alibaba.Regions)
	if pr.Alibaba.ProductType != "" && !slices.Contains(ProductTypes, pr.Alibaba.ProductType) {
		v.add(a.key("productType"), ErrInvalid, fmt.Sprintf("%q is not an Alibaba product type", pr.Alibaba.ProductType), "use one of "+strings.Join(ProductTypes, ", ")+", or leave it empty")
	}

	h := p.key("huawei")
	v.account(h.key("account"), pr.Huawei.Account)
	v.rate(h.key("rate"), pr.Huawei.Rate)
	for _, region := range slices.Sorted(maps.Keys(pr.Huawei.Projects)) {
		rp := h.key("projects").key(region)
		if !regionRE.MatchString(region) {
			v.add(rp, ErrInvalid, fmt.Sprintf("%q is not a region id", region), "use the region id as the key, e.g. cn-north-4")
		}
		if id := pr.Huawei.Projects[region]; !projectRE.MatchString(id) {
			v.add(rp, ErrInvalid, fmt.Sprintf("%q is not a project id", id), "copy the 32-character project id of this region from the console's My Credentials page")
		}
	}
}

func (v *validator) replication(p fieldPath, r *Replication) {
	v.positive(p.key("pollInterval"), r.PollInterval, "30s")
	v.positive(p.key("timeout"), r.Timeout, "6h")
	if r.PollInterval > 0 && r.Timeout > 0 && r.PollInterval >= r.Timeout {
		v.add(p.key("pollInterval"), ErrInvalid, fmt.Sprintf("pollInterval %s is not shorter than timeout %s", r.PollInterval, r.Timeout), "poll more often than the timeout, e.g. pollInterval 30s with timeout 6h")
	}
	names := map[string]int{}
	for i := range r.Policies {
		pol := &r.Policies[i]
		pp := p.key("policies").index(i)
		v.policyName(pp, pol.Name, names, i)
		v.match(pp.key("match"), pol.Match, false)
		if len(pol.Regions) == 0 {
			v.add(pp.key("regions"), ErrInvalid, fmt.Sprintf("policy %q names no destination region", pol.Name), "list at least one region id under regions, e.g. regions: [ap-shanghai]")
		}
		v.regions(pp.key("regions"), pol.Regions)
		if pol.Timeout < 0 {
			v.add(pp.key("timeout"), ErrInvalid, fmt.Sprintf("timeout %s is negative", pol.Timeout), "use a positive duration, or leave it out to use replication.timeout")
		}
		if pol.PollInterval < 0 {
			v.add(pp.key("pollInterval"), ErrInvalid, fmt.Sprintf("pollInterval %s is negative", pol.PollInterval), "use a positive duration, or leave it out to use replication.pollInterval")
		}
	}
}

func (v *validator) rebuild(p fieldPath, r *Rebuild) {
	names := map[string]int{}
	for i := range r.Policies {
		pol := &r.Policies[i]
		pp := p.key("policies").index(i)
		v.policyName(pp, pol.Name, names, i)
		v.match(pp.key("match"), pol.Match, true)
		v.regions(pp.key("regions"), pol.Regions)
		v.desktops(pp.key("desktops"), pol.Desktops)
		if pol.Canary < 0 {
			v.add(pp.key("canary"), ErrInvalid, fmt.Sprintf("canary is %d", pol.Canary), "use 0 for no canary, or the number of desktops to rebuild first (default 1)")
		}
		if pol.BatchSize < 1 || pol.BatchSize > rules.MaxBatchSize {
			v.add(pp.key("batchSize"), ErrInvalid, fmt.Sprintf("batchSize is %d; RebuildDesktops takes 1 to %d desktops a call", pol.BatchSize, rules.MaxBatchSize),
				fmt.Sprintf("use a number from 1 to %d", rules.MaxBatchSize))
		}
		if pol.FailureBudget < 0 {
			v.add(pp.key("failureBudget"), ErrInvalid, fmt.Sprintf("failureBudget is %d", pol.FailureBudget), "use 0 to stop at the first failed desktop, or how many failures to tolerate")
		}
		v.positive(pp.key("checkInterval"), pol.CheckInterval, "10s")
		v.positive(pp.key("timeout"), pol.Timeout, "1h")
		if pol.Window != nil {
			v.window(pp.key("window"), *pol.Window)
		}
		if pol.OperateType != "" && !slices.Contains(OperateTypes, pol.OperateType) {
			v.add(pp.key("operateType"), ErrInvalid, fmt.Sprintf("%q is not an operate type", pol.OperateType), `use "replace" to replace data disks, or leave it empty to keep them when the OS is unchanged`)
		}
		if pol.OperateType == "replace" && !pol.AllowDataDiskWipe {
			v.add(pp.key("operateType"), ErrInvalid, `operateType "replace" wipes the desktops' data disks`, "set allowDataDiskWipe: true to confirm, or remove operateType")
		}
		if pol.Language != "" && !slices.Contains(Languages, pol.Language) {
			v.add(pp.key("language"), ErrInvalid, fmt.Sprintf("%q is not a supported language", pol.Language), "use one of "+strings.Join(Languages, ", ")+", or leave it empty")
		}
	}
}

// windowKeys are the YAML keys of a maintenance window's fields.
var windowKeys = map[rules.WindowField]string{
	rules.WindowStart: "start", rules.WindowEnd: "end", rules.WindowTimeZone: "timeZone", rules.WindowDays: "days",
}

// window reports the problems the rebuild core finds in a maintenance window, each at its key.
func (v *validator) window(p fieldPath, w MaintenanceWindow) {
	_, problems := rules.ParseWindow(w.Spec())
	for _, pr := range problems {
		wp := p.key(windowKeys[pr.Field])
		if pr.Field == rules.WindowDays {
			wp = wp.index(pr.Index)
		}
		v.add(wp, ErrInvalid, pr.Problem, pr.Fix)
	}
}

func (v *validator) policyName(p fieldPath, name string, seen map[string]int, i int) {
	if strings.TrimSpace(name) == "" {
		v.add(p.key("name"), ErrInvalid, "the policy has no name", "give it a unique name, e.g. name: prod-images")
		return
	}
	if first, dup := seen[name]; dup {
		v.add(p.key("name"), ErrInvalid, fmt.Sprintf("policy name %q is already used by policy %d", name, first), "give each policy a different name")
		return
	}
	seen[name] = i
}

func (v *validator) match(p fieldPath, m policy.Match, rebuild bool) {
	if m.Provider != "" && !slices.Contains(events.Providers, m.Provider) {
		v.add(p.key("provider"), ErrInvalid, fmt.Sprintf("%q is not a provider", m.Provider), "use one of "+strings.Join(events.Providers, ", ")+", or leave it out to match every provider")
	}
	if rebuild && m.Provider != "" && m.Provider != events.ProviderAlibaba {
		v.add(p.key("provider"), ErrInvalid, fmt.Sprintf("rebuild applies to Alibaba cloud desktops, not %s images", m.Provider), "set provider: alibaba, or remove this rebuild policy")
	}
	if m.ProductType != "" {
		if !slices.Contains(ProductTypes, m.ProductType) {
			v.add(p.key("productType"), ErrInvalid, fmt.Sprintf("%q is not an Alibaba product type", m.ProductType), "use one of "+strings.Join(ProductTypes, ", "))
		} else if m.Provider != "" && m.Provider != events.ProviderAlibaba {
			v.add(p.key("productType"), ErrInvalid, fmt.Sprintf("productType is an Alibaba attribute, but the policy matches %s images", m.Provider), "remove productType, or set provider: alibaba")
		}
	}
	if m.NamePattern != "" {
		if err := policy.ValidPattern(m.NamePattern); err != nil {
			v.add(p.key("namePattern"), ErrInvalid, fmt.Sprintf("%q is not a valid name pattern", m.NamePattern), `use * for any characters, ? for one, [a-z] for a range, and \ to escape; close every [`)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m.Tags)) {
		if strings.TrimSpace(k) == "" {
			v.add(p.key("tags").key(k), ErrInvalid, "a tag key is empty", "write the tag's key")
		}
	}
}

func (v *validator) regions(p fieldPath, regions []string) {
	seen := map[string]bool{}
	for i, r := range regions {
		switch {
		case !regionRE.MatchString(r):
			v.add(p.index(i), ErrInvalid, fmt.Sprintf("%q is not a region id", r), "write the provider's region id in lower case, e.g. ap-shanghai, cn-hangzhou or cn-north-4")
		case seen[r]:
			v.add(p.index(i), ErrInvalid, fmt.Sprintf("region %q is listed twice", r), "remove the duplicate")
		}
		seen[r] = true
	}
}

func (v *validator) desktops(p fieldPath, d DesktopSelector) {
	if d.IsZero() {
		v.add(p, ErrInvalid, "the policy selects no desktops", "set desktops.ids, desktops.tags, desktops.groupId, or desktops.olderVersionOfImage: true (a rebuild wipes system disks, so it never defaults to every desktop)")
		return
	}
	seen := map[string]bool{}
	for i, id := range d.IDs {
		switch {
		case strings.TrimSpace(id) == "":
			v.add(p.key("ids").index(i), ErrInvalid, "a desktop id is empty", "remove it or write the id, e.g. ecd-0a1b2c3d")
		case seen[id]:
			v.add(p.key("ids").index(i), ErrInvalid, fmt.Sprintf("desktop %q is listed twice", id), "remove the duplicate")
		}
		seen[id] = true
	}
	for _, k := range slices.Sorted(maps.Keys(d.Tags)) {
		if strings.TrimSpace(k) == "" {
			v.add(p.key("tags").key(k), ErrInvalid, "a tag key is empty", "write the tag's key")
		}
	}
}

func (v *validator) positive(p fieldPath, d Duration, example string) {
	if d <= 0 {
		v.add(p, ErrInvalid, fmt.Sprintf("%s must be longer than zero, got %s", lastKey(p), d), fmt.Sprintf("use a positive duration such as %q", example))
	}
}

func (v *validator) rate(p fieldPath, r float64) {
	if math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
		v.add(p, ErrInvalid, fmt.Sprintf("rate %v is not a number of requests per second", r), "use a positive number, or 0 for the provider's default")
	}
}

func (v *validator) account(p fieldPath, a string) {
	if a != "" && !accountRE.MatchString(a) {
		v.add(p, ErrInvalid, fmt.Sprintf("%q is not a valid account label", a), "use letters, digits, _ and - only; it is a label for records, not a credential")
	}
}

func (v *validator) file(p fieldPath, path, what string) {
	if path == "" {
		return
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		v.add(p, ErrInvalid, fmt.Sprintf("%s %q cannot be read: %v", what, path, unwrapPathError(err)), "check the path (relative paths start at the working directory)")
	case st.IsDir():
		v.add(p, ErrInvalid, fmt.Sprintf("%s %q is a directory", what, path), "name the file itself")
	}
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkNATSURL accepts what nats.go accepts: scheme://host:port or a bare host:port.
func checkNATSURL(s string) error {
	if s == "" {
		return errors.New("the url list has an empty entry")
	}
	if !strings.Contains(s, "://") {
		if err := checkHostPort(s); err != nil {
			return fmt.Errorf("%q is not a NATS URL", redactURL(s))
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a NATS URL", redactURL(s))
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
		return nil
	}
	return fmt.Errorf("%q has scheme %q, not nats, tls, ws or wss", redactURL(s), u.Scheme)
}

// redactURL drops user information (a NATS URL may carry user:password) before a URL goes
// into a message.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if at := strings.LastIndex(s, "@"); at >= 0 {
			return "…" + s[at:]
		}
		return s
	}
	return u.Redacted()
}

func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has no valid port", s)
	}
	return nil
}

// CheckRegions reports the policy regions that a provider does not have. known maps a
// provider name to its region ids; providers missing from known are not checked. Replication
// policies are checked when their match names a provider; rebuild policies against
// "alibaba". Provider packages own the region lists, so the caller (the CLI or a function's
// start-up) passes them in and this package does not import them.
func (c *Config) CheckRegions(known map[string][]string) error {
	v := &validator{c: c}
	check := func(p fieldPath, provider string, regions []string) {
		list, ok := known[provider]
		if !ok {
			return
		}
		for i, r := range regions {
			if !slices.Contains(list, r) {
				v.add(p.index(i), ErrInvalid, fmt.Sprintf("%q is not a region id of %s", r, provider), "use one of "+strings.Join(list, ", "))
			}
		}
	}
	for i, pol := range c.Replication.Policies {
		if pol.Match.Provider != "" {
			check(fieldPath{"replication", "policies", i, "regions"}, pol.Match.Provider, pol.Regions)
		}
	}
	for i, pol := range c.Rebuild.Policies {
		check(fieldPath{"rebuild", "policies", i, "regions"}, events.ProviderAlibaba, pol.Regions)
	}
	return v.errs.orNil()
}
