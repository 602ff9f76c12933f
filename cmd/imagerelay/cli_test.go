package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/samples"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/domain"
)

func TestParseImages(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr string
	}{
		{"yaml object", "provider: tencent\nimageId: img-1\nsourceRegion: ap-guangzhou\n", 1, ""},
		{"json object", `{"provider":"huawei","imageId":"x","sourceRegion":"cn-north-4"}`, 1, ""},
		{"yaml list", "- {provider: tencent, imageId: a, sourceRegion: ap-guangzhou}\n- {provider: tencent, imageId: b, sourceRegion: ap-guangzhou}\n", 2, ""},
		{"unknown field", "provider: tencent\nimageTag: img-1\n", 0, `unknown field "imageTag"`},
		{"bad yaml", "provider: [tencent\n", 0, "f.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseImages("f.yaml", []byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("got %d images (%v), want %d", len(got), err, tt.want)
			}
		})
	}
}

// Every shipped sample is a valid image.published event.
func TestSamplesAreValidEvents(t *testing.T) {
	imgs, err := sampleImages(samples.FS)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) < 3 {
		t.Fatalf("%d samples, want one per provider", len(imgs))
	}
	for _, img := range imgs {
		if _, err := newPublished(img); err != nil {
			t.Errorf("sample %s: %v", img.ImageID, err)
		}
	}
}

func TestPublishedRejectsAnIncompleteImageNamingTheField(t *testing.T) {
	_, err := newPublished(events.ImagePublished{Image: events.Image{Provider: "tencent", ImageID: "img-1"}})
	if err == nil || !strings.Contains(err.Error(), "sourceRegion") {
		t.Fatalf("error %v, want it to name sourceRegion", err)
	}
}

func TestNATSURL(t *testing.T) {
	cfg := config.Defaults()
	if got := natsURL(cfg, ""); got != "nats://127.0.0.1:4222" {
		t.Errorf("default %q", got)
	}
	cfg.NATS.URL = "nats://nats.internal:4222"
	if got := natsURL(cfg, ""); got != cfg.NATS.URL {
		t.Errorf("configured %q", got)
	}
	if got := natsURL(cfg, "nats://flag:4222"); got != "nats://flag:4222" {
		t.Errorf("flag %q", got)
	}
}

func TestStatusTable(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	recs := []domain.Record{
		{Copy: domain.Copy{Image: domain.Image{Provider: "tencent", ImageID: "img-1"}, DestinationRegion: "ap-shanghai"},
			State: domain.StateSucceeded, Percent: 100, DestinationImageID: "img-2", RequestedAt: t0, StartedAt: t0.Add(time.Second), FinishedAt: t0.Add(61 * time.Second)},
		{Copy: domain.Copy{Image: domain.Image{Provider: "huawei", ImageID: "h-1"}, DestinationRegion: "cn-east-3"},
			State: domain.StateFailed, Code: "IMG.0452", Message: "encrypted\nimages cannot be copied", RequestedAt: t0},
	}
	var buf bytes.Buffer
	writeTable(&buf, recs, t0.Add(2*time.Minute))
	out := buf.String()
	for _, want := range []string{"ap-shanghai", "succeeded", "100%", "img-2", "1m0s", "IMG.0452: encrypted images cannot be copied"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	writeTable(&buf, nil, t0)
	if !strings.Contains(buf.String(), "no replications yet") {
		t.Errorf("empty table: %s", buf.String())
	}
}
