// Package events is imagerelay's public event contract: the CloudEvent types every function
// emits and consumes, their data payloads, subjects, deterministic ids, extensions and JSON
// Schemas, and the decode + validate step that turns outside input into a trusted event.
//
// Other programs subscribe to these events, so changing a type or a payload is a versioned
// change: add a new schema version rather than editing an existing one.
package events

// TypePrefix starts every imagerelay CloudEvent type.
const TypePrefix = "io.imagerelay."

// Event type names, exactly as they appear in the CloudEvent "type" attribute.
//
// Delayed work has no type of its own: a function that has to wait re-publishes the event it
// is handling, unchanged, on its internal subject imagerelay.defer.<function>.<provider>.<region>
// (see shared/adapters/bus Defer and asyncapi.yaml).
const (
	TypeImagePublished          = TypePrefix + "image.published"
	TypeReplicationPlanned      = TypePrefix + "replication.planned"
	TypeReplicationRequested    = TypePrefix + "replication.requested"
	TypeReplicationStarted      = TypePrefix + "replication.started"
	TypeReplicationProgressed   = TypePrefix + "replication.progressed"
	TypeReplicationSucceeded    = TypePrefix + "replication.succeeded"
	TypeReplicationFailed       = TypePrefix + "replication.failed"
	TypeReplicationCompleted    = TypePrefix + "replication.completed"
	TypeRebuildPlanned          = TypePrefix + "rebuild.planned"
	TypeDesktopRebuildStarted   = TypePrefix + "desktop.rebuild.started"
	TypeDesktopRebuildSucceeded = TypePrefix + "desktop.rebuild.succeeded"
	TypeDesktopRebuildFailed    = TypePrefix + "desktop.rebuild.failed"
	TypeRebuildCompleted        = TypePrefix + "rebuild.completed"
)

// SchemaVersion is the version segment of every dataschema URI this build emits.
const SchemaVersion = "v1"

// SchemaBaseURI is the absolute prefix of every dataschema URI.
const SchemaBaseURI = "https://imagerelay.io/schemas/"

// Provider names, used in the "provider" extension, subjects and configuration.
const (
	ProviderAlibaba = "alibaba" // Alibaba Cloud App Streaming (WUYING images).
	ProviderTencent = "tencent" // Tencent Cloud CVM.
	ProviderHuawei  = "huawei"  // Huawei Cloud IMS.
	ProviderEcd     = "ecd"     // Alibaba Cloud Elastic Desktop Service (rebuild only).
)

// Providers lists the providers that can replicate images.
var Providers = []string{ProviderAlibaba, ProviderTencent, ProviderHuawei}

// typeInfo binds a type to its short name (the subject segment) and a zero-value factory of
// its data payload, so that decoding can check the payload without a switch per caller.
type typeInfo struct {
	name    string
	newData func() any
}

var registry = map[string]typeInfo{
	TypeImagePublished:          {"image.published", func() any { return new(ImagePublished) }},
	TypeReplicationPlanned:      {"replication.planned", func() any { return new(ReplicationPlanned) }},
	TypeReplicationRequested:    {"replication.requested", func() any { return new(ReplicationRequested) }},
	TypeReplicationStarted:      {"replication.started", func() any { return new(ReplicationStarted) }},
	TypeReplicationProgressed:   {"replication.progressed", func() any { return new(ReplicationProgressed) }},
	TypeReplicationSucceeded:    {"replication.succeeded", func() any { return new(ReplicationSucceeded) }},
	TypeReplicationFailed:       {"replication.failed", func() any { return new(ReplicationFailed) }},
	TypeReplicationCompleted:    {"replication.completed", func() any { return new(ReplicationCompleted) }},
	TypeRebuildPlanned:          {"rebuild.planned", func() any { return new(RebuildPlanned) }},
	TypeDesktopRebuildStarted:   {"desktop.rebuild.started", func() any { return new(DesktopRebuild) }},
	TypeDesktopRebuildSucceeded: {"desktop.rebuild.succeeded", func() any { return new(DesktopRebuild) }},
	TypeDesktopRebuildFailed:    {"desktop.rebuild.failed", func() any { return new(DesktopRebuild) }},
	TypeRebuildCompleted:        {"rebuild.completed", func() any { return new(RebuildCompleted) }},
}

// Types returns every known event type, for documentation and tests.
func Types() []string {
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	return out
}

// Known reports whether t is an imagerelay event type.
func Known(t string) bool { _, ok := registry[t]; return ok }

// ShortName returns the type without its prefix ("replication.started"), or "" if unknown.
func ShortName(t string) string { return registry[t].name }

// SchemaURI returns the absolute dataschema URI of an event type.
func SchemaURI(t string) string {
	return SchemaBaseURI + ShortName(t) + "/" + SchemaVersion + ".json"
}
