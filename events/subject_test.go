package events_test

import (
	"strings"
	"testing"

	"github.com/imagerelay/imagerelay/events"
)

func TestNATSSubject(t *testing.T) {
	tests := []struct {
		name               string
		typ, provider, reg string
		want               string
	}{
		{"plain", events.TypeReplicationStarted, "tencent", "ap-guangzhou", "imagerelay.replication.started.tencent.ap-guangzhou"},
		{"dotted type name", events.TypeDesktopRebuildFailed, "alibaba", "cn-hangzhou", "imagerelay.desktop.rebuild.failed.alibaba.cn-hangzhou"},
		{"dots in region", events.TypeReplicationStarted, "huawei", "cn.north.4", "imagerelay.replication.started.huawei.cn_north_4"},
		{"wildcards in region", events.TypeReplicationStarted, "huawei", "cn-*>", "imagerelay.replication.started.huawei.cn-__"},
		{"space and control", events.TypeReplicationStarted, "tencent", "ap guangzhou\t", "imagerelay.replication.started.tencent.ap_guangzhou_"},
		{"non-ASCII", events.TypeReplicationStarted, "tencent", "广州", "imagerelay.replication.started.tencent.__"},
		{"wildcard provider", events.TypeImagePublished, "*", "cn-shanghai", "imagerelay.image.published._.cn-shanghai"},
		{"empty tokens", events.TypeImagePublished, "", "", "imagerelay.image.published._._"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := events.NATSSubject(tt.typ, tt.provider, tt.reg)
			if got != tt.want {
				t.Errorf("NATSSubject = %q, want %q", got, tt.want)
			}
			// Whatever the input, the subject has the name's tokens plus exactly two more.
			wantTokens := 1 + strings.Count(events.ShortName(tt.typ), ".") + 1 + 2
			if n := len(strings.Split(got, ".")); n != wantTokens {
				t.Errorf("subject %q has %d tokens, want %d", got, n, wantTokens)
			}
			if !strings.HasPrefix(got, events.NATSFilter(tt.typ)[:len(events.NATSFilter(tt.typ))-1]) {
				t.Errorf("subject %q is not matched by filter %q", got, events.NATSFilter(tt.typ))
			}
		})
	}
}

func TestNATSFilter(t *testing.T) {
	if got, want := events.NATSFilter(events.TypeReplicationStarted), "imagerelay.replication.started.>"; got != want {
		t.Errorf("NATSFilter = %q, want %q", got, want)
	}
}

func TestDeadLetterSubject(t *testing.T) {
	tests := []struct{ function, want string }{
		{"replicate", "imagerelay.dlq.replicate"},
		{"poller", "imagerelay.dlq.poller"},
		{"a.b", "imagerelay.dlq.a_b"},
		{"*", "imagerelay.dlq._"},
		{"", "imagerelay.dlq._"},
	}
	for _, tt := range tests {
		if got := events.DeadLetterSubject(tt.function); got != tt.want {
			t.Errorf("DeadLetterSubject(%q) = %q, want %q", tt.function, got, tt.want)
		}
		if !strings.HasPrefix(tt.want, events.DeadLetterPrefix) {
			t.Errorf("%q does not start with DeadLetterPrefix", tt.want)
		}
	}
}

func TestCloudEventSubject(t *testing.T) {
	if got, want := events.CloudEventSubject("huawei", "cn-north-4", "img-1"), "huawei/cn-north-4/img-1"; got != want {
		t.Errorf("CloudEventSubject = %q, want %q", got, want)
	}
}

func TestKeys(t *testing.T) {
	bare := events.Replication{
		Image:             events.Image{Provider: "tencent", ImageID: "img-1", SourceRegion: "ap-guangzhou"},
		DestinationRegion: "ap-beijing",
	}
	tests := []struct {
		name      string
		got, want string
	}{
		{"replication key", events.ReplicationKey(sampleRepl), "alibaba/default/img-0a1b2c3d4e5f/iv-7g8h9i0j1k2l/cn-hangzhou"},
		{"replication key defaults", events.ReplicationKey(bare), "tencent/default/img-1/-/ap-beijing"},
		{"image key", events.ImageKey(sampleImage), "alibaba/default/img-0a1b2c3d4e5f/iv-7g8h9i0j1k2l"},
		{"image key defaults", events.ImageKey(bare.Image), "tencent/default/img-1/-"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	// The image key prefixes the keys of its replications, so a prefix scan finds them all.
	if k := events.ReplicationKey(sampleRepl); !strings.HasPrefix(k, events.ImageKey(sampleImage)+"/") {
		t.Errorf("%q does not start with the image key", k)
	}
	other := sampleRepl
	other.DestinationRegion = "cn-beijing"
	if events.ReplicationKey(other) == events.ReplicationKey(sampleRepl) {
		t.Error("different destinations share a replication key")
	}
	acct := sampleRepl
	acct.Account = "prod"
	if events.ReplicationKey(acct) == events.ReplicationKey(sampleRepl) {
		t.Error("different accounts share a replication key")
	}
}
