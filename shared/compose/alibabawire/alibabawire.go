// Package alibabawire builds what the functions need from Alibaba Cloud alone: the Elastic
// Desktop Service client rebuild uses, and the hook that hands Function Compute's
// per-invocation STS keys to the Alibaba adapters. It links no other cloud's SDK, so the
// rebuild binary stays free of them.
package alibabawire

import (
	"context"

	"github.com/imagerelay/imagerelay/shared/adapters/alibaba"
	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
)

// Desktops builds the Alibaba Elastic Desktop Service client rebuild uses; an error
// disables rebuild only.
func Desktops(cfg *config.Config, limits ratelimit.Factory) (*alibaba.Desktops, error) {
	pc := cfg.Providers
	return alibaba.NewDesktops(alibaba.Config{EcdEndpoint: pc.Alibaba.EcdEndpoint,
		Account: pc.Alibaba.Account, RatePerSecond: pc.Alibaba.Rate, Limits: limits})
}

// WithCredentials puts the Alibaba Cloud keys Function Compute hands an invocation on its
// context, where the Alibaba adapters use them instead of the environment's. It is the
// runtime's credentials hook (host.Function's WithCredentials).
func WithCredentials(ctx context.Context, c host.Credentials) context.Context {
	return alibaba.ContextWithCredentials(ctx, alibaba.Credentials{AccessKeyID: c.AccessKeyID,
		AccessKeySecret: c.AccessKeySecret, SecurityToken: c.SecurityToken})
}
