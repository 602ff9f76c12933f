// Package emulators runs the local cloud emulators together — Tencent Cloud CVM, Alibaba
// Cloud App Streaming + Elastic Desktop Service, and Huawei Cloud IMS — each on its own
// loopback port, seeded from one file, sharing one call log and one fault injector. Every port
// also serves the admin endpoint (/_admin/calls, /_admin/faults).
package emulators

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/alibabaemu"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/huaweiemu"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/tencentemu"
)

// Seed is the content of an emulator seed file: the data of each cloud and the faults to
// inject.
type Seed struct {
	Tencent tencentemu.Seed `yaml:"tencent" json:"tencent"`
	Alibaba alibabaemu.Seed `yaml:"alibaba" json:"alibaba"`
	Huawei  huaweiemu.Seed  `yaml:"huawei" json:"huawei"`
	Faults  FaultSeed       `yaml:"faults" json:"faults"`
}

// FaultSeed configures fault injection for every emulator.
type FaultSeed struct {
	Rates emucore.Rates  `yaml:"rates" json:"rates"`
	Rules []emucore.Rule `yaml:"rules" json:"rules"`
	// RandomSeed makes random faults repeatable.
	RandomSeed uint64 `yaml:"randomSeed" json:"randomSeed"`
}

// DefaultSeed returns demo data for every cloud, with no faults.
func DefaultSeed() Seed {
	return Seed{Tencent: tencentemu.DefaultSeed(), Alibaba: alibabaemu.DefaultSeed(), Huawei: huaweiemu.DefaultSeed()}
}

// LoadSeed reads a seed file (YAML or JSON). Sections left out keep the demo data.
func LoadSeed(path string) (Seed, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Seed{}, fmt.Errorf("emulators: read seed: %w", err)
	}
	seed := DefaultSeed()
	if err := yaml.UnmarshalWithOptions(raw, &seed, yaml.Strict()); err != nil {
		return Seed{}, fmt.Errorf("emulators: %s: %s", path, yaml.FormatError(err, false, true))
	}
	for i, r := range seed.Faults.Rules {
		if !slices.Contains(emucore.Kinds(), r.Kind) {
			return Seed{}, fmt.Errorf("emulators: %s: faults.rules[%d]: unknown fault kind %q; use one of %v", path, i, r.Kind, emucore.Kinds())
		}
	}
	return seed, nil
}

// DemoEnv maps the credential environment variables the providers read to the emulators'
// demo keys, for the demo and the end-to-end tests.
func DemoEnv() map[string]string {
	return map[string]string{
		"TENCENTCLOUD_SECRET_ID":          tencentemu.DemoSecretID,
		"TENCENTCLOUD_SECRET_KEY":         tencentemu.DemoSecretKey,
		"ALIBABA_CLOUD_ACCESS_KEY_ID":     alibabaemu.DemoAccessKeyID,
		"ALIBABA_CLOUD_ACCESS_KEY_SECRET": alibabaemu.DemoAccessKeySecret,
		"HUAWEICLOUD_SDK_AK":              huaweiemu.DemoAK,
		"HUAWEICLOUD_SDK_SK":              huaweiemu.DemoSK,
	}
}

// Addrs are the listen addresses of the emulators; "127.0.0.1:0" picks a free port.
type Addrs struct {
	Tencent, Alibaba, Huawei string
}

// DefaultAddrs are the ports the sample imagerelay.yaml points at.
func DefaultAddrs() Addrs {
	return Addrs{Tencent: "127.0.0.1:9401", Alibaba: "127.0.0.1:9402", Huawei: "127.0.0.1:9403"}
}

// Set is a running set of emulators.
type Set struct {
	Calls   *emucore.CallLog
	Faults  *emucore.Faults
	Tencent *tencentemu.Emulator
	Alibaba *alibabaemu.Emulator
	Huawei  *huaweiemu.Emulator
	// Addrs are the addresses actually listened on.
	Addrs   Addrs
	servers []*http.Server
}

// Start starts every emulator. Close stops them.
func Start(seed Seed, addrs Addrs) (*Set, error) {
	s := &Set{Calls: &emucore.CallLog{}, Faults: emucore.NewFaults(seed.Faults.Rates, seed.Faults.RandomSeed)}
	s.Faults.Add(seed.Faults.Rules...)
	var err error
	if s.Tencent, err = tencentemu.New(seed.Tencent, s.Calls, s.Faults); err != nil {
		return nil, err
	}
	if s.Alibaba, err = alibabaemu.New(seed.Alibaba, s.Calls, s.Faults); err != nil {
		return nil, err
	}
	if s.Huawei, err = huaweiemu.New(seed.Huawei, s.Calls, s.Faults); err != nil {
		return nil, err
	}
	admin := emucore.AdminHandler(s.Calls, s.Faults)
	for _, e := range []struct {
		name string
		addr *string
		h    http.Handler
	}{{"tencent", &addrs.Tencent, s.Tencent}, {"alibaba", &addrs.Alibaba, s.Alibaba}, {"huawei", &addrs.Huawei, s.Huawei}} {
		ln, err := net.Listen("tcp", *e.addr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("emulators: %s emulator cannot listen on %s (is another imagerelay running?): %w", e.name, *e.addr, err)
		}
		*e.addr = ln.Addr().String()
		mux := http.NewServeMux()
		mux.Handle("/_admin/", admin)
		mux.Handle("/", e.h)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		s.servers = append(s.servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				panic(err) // a listener we own failed: nothing sensible to continue with
			}
		}()
	}
	s.Addrs = addrs
	return s, nil
}

// Close stops every emulator.
func (s *Set) Close() {
	for _, srv := range s.servers {
		_ = srv.Close()
	}
}
