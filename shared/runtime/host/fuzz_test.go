package host_test

import (
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
)

// FuzzDecode feeds arbitrary invocation payloads (an SQS body, an EventBridge detail, an FC
// array item) to Decode: it never panics, keeps the raw bytes for the dead letter, and an
// input it accepts is an event that passes the contract's checks.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"provider":"tencent","imageId":"img-abc12345","sourceRegion":"ap-guangzhou"}`,
		`{"specversion":"1.0","id":"1","source":"/x","type":"io.imagerelay.image.published","datacontenttype":"application/json","data":{"provider":"tencent","imageId":"img-1","sourceRegion":"ap-guangzhou"}}`,
		`{"specversion":"1.0","id":"1","source":"/x","type":"com.example.other","data":"{\"provider\":\"huawei\"}"}`,
		`[]`, `null`, `{"imageId":"img\r\n1"}`, `not json`,
	} {
		f.Add([]byte(seed))
	}
	fb := host.Fallback{ID: "fuzz-1", Source: "/fuzz", Time: time.Unix(0, 0)}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in := host.Decode(raw, fb, "fuzz")
		if string(in.Raw) != string(raw) {
			t.Fatal("Decode did not keep the raw input")
		}
		if in.Err != nil {
			return
		}
		if err := events.Check(in.Event); err != nil {
			t.Fatalf("Decode accepted an event that fails the contract: %v\n%s", err, raw)
		}
	})
}
