// Package rebuildwire wires the rebuild function: its core, its policies from the
// configuration, and Alibaba's Elastic Desktop Service as its fleet. It builds no other
// cloud: the rebuild binary links neither the Tencent nor the Huawei SDK. The rebuild
// binary's main hands [Function] to the runtime.
package rebuildwire

import (
	"context"
	"fmt"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/shared/adapters/alibaba"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/compose/alibabawire"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
)

// Function is what the rebuild binary hands to the runtime.
func Function() host.Function {
	return compose.Function(rebuild.Name, Open, alibabawire.WithCredentials)
}

// Open builds rebuild on env, with the desktop client.
func Open(_ context.Context, env *compose.Env) (bus.Spec, error) {
	d, err := alibabawire.Desktops(env.Config, env.Limits)
	return Spec(env, d, err), nil
}

// Spec returns rebuild's bus spec: its core on the desktop client d (or disabled by
// desktopsErr), four events at a time.
//
// The spec is never idle, even without a rebuild policy: its consumer then acknowledges every
// replication.succeeded at once (the core reads nothing for a copy no policy matches), and so
// keeps its place in the stream. An idle rebuild would have no consumer, and the policy added
// later would create it at the start of the stream and rebuild desktops onto every copy of the
// last 30 days, oldest first.
func Spec(env *compose.Env, d *alibaba.Desktops, desktopsErr error) bus.Spec {
	return bus.Spec{Function: rebuild.Name, Types: []string{events.TypeReplicationSucceeded}, Handler: Core(env, d, desktopsErr), Concurrency: 4}
}

// Core builds the rebuild core. Without a desktop client it is built disabled: matching
// copies are acknowledged with a warning, and replication carries on unaffected.
func Core(env *compose.Env, desktops *alibaba.Desktops, desktopsErr error) *rebuild.Core {
	c := rebuild.Config{Policies: Policies(env.Config), Store: Store(env.Store), Log: env.Log, Publisher: env.Bus}
	switch {
	case desktopsErr != nil:
		c.Disabled = fmt.Errorf("%w: the Alibaba Elastic Desktop Service client could not be built: %w", rebuild.ErrDisabled, desktopsErr)
	case desktops == nil:
		c.Disabled = fmt.Errorf("%w: no Alibaba Elastic Desktop Service client", rebuild.ErrDisabled)
	default:
		c.Fleet = desktopFleet{d: desktops}
	}
	if len(c.Policies) > 0 && env.Log != nil {
		switch {
		case c.Fleet == nil:
			env.Log.Warn("rebuild is disabled; its policies will not rebuild anything", "reason", c.Disabled.Error())
		case alibaba.CredentialsFromEnv().AccessKeyID == "":
			// Function Compute hands credentials to each invocation, so this is not fatal;
			// elsewhere every rebuild is refused and dead-lettered with the reason.
			env.Log.Warn("rebuild policies are set but no Alibaba credentials are in the environment; rebuilds will be refused unless the runtime supplies credentials",
				"variables", alibaba.EnvAccessKeyID+", "+alibaba.EnvAccessKeySecret)
		}
	}
	return rebuild.New(c)
}

// desktopFleet adapts the Alibaba Elastic Desktop Service client to rebuild's Fleet port.
type desktopFleet struct{ d *alibaba.Desktops }

func (f desktopFleet) ListDesktops(ctx context.Context, region string, filter rebuild.DesktopFilter) ([]rebuild.Desktop, error) {
	got, err := f.d.ListDesktops(ctx, region, alibaba.DesktopFilter{DesktopIDs: filter.DesktopIDs, ImageIDs: filter.ImageIDs,
		GroupID: filter.GroupID, Tags: filter.Tags})
	if err != nil {
		return nil, err
	}
	out := make([]rebuild.Desktop, len(got))
	for i, d := range got {
		out[i] = rebuild.Desktop{ID: d.ID, Status: d.Status, ImageID: d.ImageID, OSType: d.OSType, GPU: d.GPU,
			DataDisk: d.DataDisk, GroupID: d.GroupID, Tags: d.Tags}
	}
	return out, nil
}

func (f desktopFleet) RebuildDesktops(ctx context.Context, region string, ids []string, imageID string, opts rebuild.Options) ([]rebuild.DesktopResult, error) {
	got, err := f.d.RebuildDesktops(ctx, region, ids, imageID, opts.OperateType, opts.Language)
	if err != nil {
		return nil, err
	}
	out := make([]rebuild.DesktopResult, len(got))
	for i, r := range got {
		out[i] = rebuild.DesktopResult{DesktopID: r.DesktopID, Code: r.Code, Message: r.Message, OK: r.OK}
	}
	return out, nil
}
