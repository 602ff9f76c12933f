package domain_test

import (
	"encoding/json"
	"testing"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// Records and plans written by the version that embedded the event contract's types, every
// field set (and none): they must decode and encode back byte for byte, as records persist
// across upgrades.
const (
	storedRecord      = `{"key":"tencent/acme/img-1/-/ap-shanghai","provider":"tencent","account":"acme","imageId":"img-1","versionId":"v1","imageName":"base","sourceRegion":"ap-guangzhou","productType":"pt","destinationRegion":"ap-shanghai","state":"in-progress","taskId":"t1","destinationImageId":"img-2","percent":40,"providerStatus":"SYNCING","code":"c","message":"m","hint":"h","startCalls":2,"polls":3,"notFound":1,"correlationId":"corr","requestedAt":"2025-03-04T05:06:07.000008Z","startedAt":"2025-03-04T05:06:08.000008Z","finishedAt":"2025-03-04T05:06:09.000008Z","deadline":"2025-03-04T06:06:07.000008Z","updatedAt":"2025-03-04T05:06:10.000008Z","lastPolledAt":"2025-03-04T05:06:11.000008Z","pollIntervalSeconds":30,"startingSince":"2025-03-04T05:06:12.000008Z","osType":"Linux","tags":{"team":"a"},"holder":"w1/e1","ambiguousAt":"2025-03-04T05:06:13.000008Z","slotWaits":2}`
	storedEmptyRecord = `{"key":"k","provider":"","imageId":"","sourceRegion":"","destinationRegion":"","state":"requested","percent":0,"startCalls":0,"polls":0}`
	storedPlan        = `{"provider":"alibaba","imageId":"imgc-1","versionId":"iv-1","sourceRegion":"cn-shanghai","productType":"CloudDesktop","regions":["cn-beijing"],"correlationId":"c","attributes":{"sizeGB":20,"encrypted":false,"fromISO":false}}`
	storedEmptyPlan   = `{"provider":"","imageId":"","sourceRegion":"","regions":null,"correlationId":""}`
	// storedTrackedPlan is a plan that records its settled regions (added after the above).
	storedTrackedPlan = `{"provider":"tencent","imageId":"img-1","sourceRegion":"ap-guangzhou","regions":["ap-beijing","ap-shanghai"],"correlationId":"c","settled":{"ap-beijing":{"state":"failed","code":"c","message":"m"},"ap-shanghai":{"state":"succeeded","destinationImageId":"img-2"}},"tracksSettled":true}`
)

func roundTrip[T any](t *testing.T, stored string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(stored), &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != stored {
		t.Errorf("%T changed its JSON:\n got %s\nwant %s", v, b, stored)
	}
	return v
}

func TestStoredRecordsKeepTheirJSON(t *testing.T) {
	rec := roundTrip[domain.Record](t, storedRecord)
	if rec.DestinationRegion != "ap-shanghai" || rec.ImageID != "img-1" || rec.Account != "acme" || rec.SlotWaits != 2 || !rec.Ambiguous() {
		t.Errorf("decoded %+v", rec)
	}
	roundTrip[domain.Record](t, storedEmptyRecord)
	plan := roundTrip[domain.Plan](t, storedPlan)
	if plan.Attributes == nil || plan.Attributes.SizeGB != 20 || plan.ProductType != "CloudDesktop" {
		t.Errorf("decoded %+v", plan)
	}
	roundTrip[domain.Plan](t, storedEmptyPlan)
	tracked := roundTrip[domain.Plan](t, storedTrackedPlan)
	if !tracked.TracksSettled || !tracked.Complete() || tracked.Settled["ap-shanghai"].DestinationImageID != "img-2" {
		t.Errorf("decoded %+v", tracked)
	}
	if plan.Complete() {
		t.Error("a plan without settlements is complete")
	}
}

// The domain's image converts to and from the event contract's with a type conversion, and
// both spell it the same in JSON.
func TestImageConvertsToTheEventContract(t *testing.T) {
	e := events.Image{Provider: "alibaba", Account: "a", ImageID: "i", VersionID: "v", ImageName: "n", SourceRegion: "s", ProductType: "p"}
	d := domain.Image(e)
	if events.Image(d) != e {
		t.Fatalf("conversion lost a field: %+v", d)
	}
	eb, _ := json.Marshal(e)
	db, _ := json.Marshal(d)
	if string(eb) != string(db) {
		t.Errorf("JSON differs: events %s, domain %s", eb, db)
	}
}
