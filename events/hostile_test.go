package events_test

import (
	"strings"
	"testing"

	"github.com/imagerelay/imagerelay/events"
)

// Ids, regions and account labels travel into NATS headers, KV keys, provider calls and
// logs: a CR LF, a NUL, white space, a wildcard or a look-alike character must be refused at
// the boundary, with the field named.
func TestSchemasRejectHostileIDs(t *testing.T) {
	base := `"provider":"alibaba","sourceRegion":"cn-shanghai"`
	tests := []struct{ name, data, field string }{
		{"imageId with CR LF", `{` + base + `,"imageId":"img-1\r\nNats-Msg-Id: x"}`, "data.imageId"},
		{"imageId with NUL", `{` + base + `,"imageId":"img-1\u0000"}`, "data.imageId"},
		{"imageId with a space", `{` + base + `,"imageId":"img 1"}`, "data.imageId"},
		{"imageId with a tab", `{` + base + `,"imageId":"img-1\t"}`, "data.imageId"},
		{"imageId with a wildcard", `{` + base + `,"imageId":"img-*"}`, "data.imageId"},
		{"imageId with a full wildcard", `{` + base + `,"imageId":"img->"}`, "data.imageId"},
		{"imageId with a zero-width space", `{` + base + `,"imageId":"img-1\u200b"}`, "data.imageId"},
		{"imageId with a bidi override", `{` + base + `,"imageId":"img-\u202e1"}`, "data.imageId"},
		{"imageId in Cyrillic", `{` + base + `,"imageId":"іmg-1"}`, "data.imageId"},
		{"imageId too long", `{` + base + `,"imageId":"img-` + strings.Repeat("a", 300) + `"}`, "data.imageId"},
		{"versionId with LF", `{` + base + `,"imageId":"img-1","versionId":"iv-1\n"}`, "data.versionId"},
		{"account with a dot", `{` + base + `,"imageId":"img-1","account":"prod.eu"}`, "data.account"},
		{"account with a space", `{` + base + `,"imageId":"img-1","account":"prod eu"}`, "data.account"},
		{"region with a wildcard", `{"provider":"alibaba","imageId":"img-1","sourceRegion":"cn-*"}`, "data.sourceRegion"},
		{"region too long", `{"provider":"alibaba","imageId":"img-1","sourceRegion":"` + strings.Repeat("a", 65) + `"}`, "data.sourceRegion"},
		{"regions entry with CR LF", `{` + base + `,"imageId":"img-1","regions":["cn-hangzhou\r\n"]}`, "data.regions.0"},
		{"productType with a space", `{` + base + `,"imageId":"img-1","productType":"Cloud Desktop"}`, "data.productType"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := events.ValidateData(events.TypeImagePublished, []byte(tt.data))
			if de := decodeErr(t, err); de.Field != tt.field {
				t.Errorf("Field = %q, want %q (error: %v)", de.Field, tt.field, err)
			}
		})
	}
	// The ids of every provider, and the adopted task ids imagerelay makes, stay valid.
	for _, id := range []string{"img-0a1b2c3d4e5f", "imgc-0123456789abcdef", "iv-7g8h9i0j1k2l", "m-bp1abc", "ecd-abc123",
		"2f6c1b3e-4a5d-4e6f-8a9b-0c1d2e3f4a5b", "listimage:imgc-1/iv-1", "image:2f6c1b3e"} {
		data := `{` + base + `,"imageId":"` + id + `","account":"prod_eu-2"}`
		if err := events.ValidateData(events.TypeImagePublished, []byte(data)); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	desktop := `{"provider":"alibaba","imageId":"img-1","sourceRegion":"cn-shanghai","destinationRegion":"cn-hangzhou",` +
		`"destinationImageId":"img-1","policy":"p","desktopId":"ecd-1\r\n","batch":0}`
	if de := decodeErr(t, events.ValidateData(events.TypeDesktopRebuildStarted, []byte(desktop))); de.Field != "data.desktopId" {
		t.Errorf("desktopId with CR LF: field %q", de.Field)
	}
}

// The CloudEvents attributes and extensions are checked the same way in both content modes.
func TestCheckRejectsHostileAttributes(t *testing.T) {
	tests := []struct {
		name        string
		attr, value string
		field       string
	}{
		{"id with CR LF", "id", "ev-1\r\nNats-Msg-Id: forged", "id"},
		{"id with NUL", "id", "ev-1\x00", "id"},
		{"id too long", "id", strings.Repeat("x", events.MaxIDLength+1), "id"},
		{"id with a bidi override", "id", "ev-\u202e1", "id"},
		{"source with LF", "source", "/e2e\n", "source"},
		{"subject with a control character", "subject", "alibaba/cn-hangzhou/img\x07", "subject"},
		{"region extension with a dot", "region", "cn-hangzhou.evil", "region"},
		{"region extension with a wildcard", "region", ">", "region"},
		{"region extension with a space", "region", "cn hangzhou", "region"},
		{"provider extension upper case", "provider", "Alibaba", "provider"},
		{"imageid extension with a wildcard", "imageid", "img-*", "imageid"},
		{"unknown extension with CR LF", "x-note", "a\r\nb", "x-note"},
		{"unknown extension too long", "xnote", strings.Repeat("n", events.MaxAttributeLength+1), "xnote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := editFixture(t, events.TypeReplicationRequested, func(m map[string]any) { m[tt.attr] = tt.value })
			_, err := events.Decode(raw)
			if tt.attr == "x-note" {
				// Not a valid extension name at all: sdk-go refuses the name first.
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if de := decodeErr(t, err); de.Field != tt.field {
				t.Errorf("Field = %q, want %q (error: %v)", de.Field, tt.field, err)
			}
		})
	}
	// Binary mode: a header value cannot carry CR LF on the wire, but a NUL or a bidi
	// override can, and oversized values can.
	good := mustNew(t, events.TypeReplicationRequested, validData()[events.TypeReplicationRequested], sampleMeta())
	for _, tt := range []struct{ header, value, field string }{
		{"ce-id", "ev\x00", "id"},
		{"ce-imageid", "img-\u200b", "imageid"},
		{"ce-region", "cn-hangzhou.>", "region"},
		{"ce-traceparent", strings.Repeat("0", events.MaxAttributeLength+1), "traceparent"},
	} {
		h := events.ToHeaders(good)
		h[tt.header] = tt.value
		names, get := headerGetter(h)
		_, err := events.FromBinary(names, get, good.Data())
		if de := decodeErr(t, err); de.Field != tt.field {
			t.Errorf("%s=%q: Field = %q, want %q (error: %v)", tt.header, tt.value, de.Field, tt.field, err)
		}
	}
}

// Data larger than MaxDataSize is refused before any schema work, naming data.
func TestCheckRejectsOversizedData(t *testing.T) {
	good := mustNew(t, events.TypeImagePublished, validData()[events.TypeImagePublished], sampleMeta())
	data := `{"provider":"alibaba","imageId":"img-1","sourceRegion":"cn-shanghai","imageName":"` + strings.Repeat("x", events.MaxDataSize) + `"}`
	h := events.ToHeaders(good)
	names, get := headerGetter(h)
	_, err := events.FromBinary(names, get, []byte(data))
	if de := decodeErr(t, err); de.Field != "data" || !strings.Contains(de.Reason, "bytes") {
		t.Errorf("oversized data: %v", err)
	}
}
