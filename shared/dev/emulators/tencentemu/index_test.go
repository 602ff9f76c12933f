package tencentemu

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// manyImages returns an emulator holding n custom images spread over three regions, with
// names name-0 … name-(n-1); each region is at its quota.
func manyImages(tb testing.TB, n int) *Emulator {
	tb.Helper()
	regions := []string{"ap-guangzhou", "ap-beijing", "ap-singapore"}
	e, err := New(Seed{Regions: regions, Quota: n / 3}, nil, nil) // every region full
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if err := e.AddImage(Image{ID: fmt.Sprintf("img-%08d", i), Name: fmt.Sprintf("name-%d", i), Region: regions[i%3], SizeGB: 20}); err != nil {
			tb.Fatal(err)
		}
	}
	return e
}

func ids(from, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("img-%08d", from+3*i))
	}
	return out
}

// DescribeImages by ids or by name looks at what it names, not at every image: the candidates
// it filters are exactly the named images of the region (with none named twice), and
// SyncImages's duplicate-name and quota checks read the region's index. At 100,000 images
// a scan of every image cost ~7 ms a call under the emulator's one mutex.
func TestDescribeImagesLooksOnlyAtWhatItNames(t *testing.T) {
	e := manyImages(t, 3000)
	e.mu.Lock()
	byID := e.candidates("ap-guangzhou", describeImagesParams{ImageIds: append(ids(0, 100), "img-00000000", "img-00000001")})
	byName := e.candidates("ap-beijing", describeImagesParams{Filters: []filter{{Name: "image-name", Values: []string{"name-1", "name-1", "name-0"}}}})
	all := e.candidates("ap-singapore", describeImagesParams{})
	private := e.inRegion("ap-guangzhou").private
	e.mu.Unlock()
	if len(byID) != 100 {
		t.Errorf("100 ids (one twice, one of another region) gave %d candidates, want 100", len(byID))
	}
	if len(byName) != 1 || byName[0].ID != "img-00000001" {
		t.Errorf("name filter gave %d candidates, want only img-00000001", len(byName))
	}
	if len(all) != 1000 || private != 1000 {
		t.Errorf("region lists %d images, %d custom; want 1000 and 1000", len(all), private)
	}

	res, aerr := e.describeImages("ap-guangzhou", describeImagesParams{ImageIds: ids(0, 100), Limit: flexUint{Set: true, V: 100}}, time.Now())
	if aerr != nil || len(res["ImageSet"].([]map[string]any)) != 100 || res["TotalCount"] != 100 {
		t.Fatalf("describe 100 ids: %v (%v)", res["TotalCount"], aerr)
	}
	name := "name-3"
	if _, aerr := e.syncImages("ap-beijing", syncImagesParams{ImageIds: []string{"img-00000001"}, DestinationRegions: []string{"ap-guangzhou"}, ImageName: &name}, time.Now()); aerr == nil || aerr.Code != "InvalidImageName.Duplicate" {
		t.Fatalf("sync under a name the region holds: %v, want InvalidImageName.Duplicate", aerr)
	}
	if _, aerr := e.syncImages("ap-beijing", syncImagesParams{ImageIds: []string{"img-00000001"}, DestinationRegions: []string{"ap-guangzhou"}}, time.Now()); aerr == nil || aerr.Code != "ImageQuotaLimitExceeded" {
		t.Fatalf("sync to a full region: %v, want ImageQuotaLimitExceeded", aerr)
	}
	if got := e.Images("ap-guangzhou"); len(got) != 1000 || !slices.IsSortedFunc(got, func(a, b Image) int { return a.CreatedTime.Compare(b.CreatedTime) }) {
		t.Errorf("Images lists %d, want 1000 oldest first", len(got))
	}
}

// BenchmarkDescribeImages100Of100k is a status check of 100 copies against an emulator that
// holds 100,000 images. Run: go test -run x -bench DescribeImages ./shared/dev/emulators/tencentemu/
func BenchmarkDescribeImages100Of100k(b *testing.B) {
	e := manyImages(b, 100_000)
	p := describeImagesParams{ImageIds: ids(0, 100), Limit: flexUint{Set: true, V: 100}}
	now := time.Now()
	for b.Loop() {
		if _, aerr := e.describeImages("ap-guangzhou", p, now); aerr != nil {
			b.Fatal(aerr)
		}
	}
}
