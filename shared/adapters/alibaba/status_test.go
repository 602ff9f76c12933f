package alibaba

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/alibabaemu"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// One image whose ListImage keeps failing must not hold up the other copies of the batch:
// the poller batches every copy to a region, and a batch-wide error would stall (or, for a
// terminal error, fail) copies that have nothing to do with the failing image.
func TestCopyStatusFailureOfOneImageStaysWithItsCopies(t *testing.T) {
	for _, kind := range []emucore.FaultKind{emucore.FaultServer, emucore.FaultThrottle, emucore.FaultDrop} {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t, emuSeed())
			ctx := context.Background()
			good := copyRequest("imgc-demodesk0001", "iv-demodesk0001", "cn-beijing")
			bad := copyRequest("imgc-demolnx00001", "iv-demolnx00001", "cn-beijing")
			gh, err := e.provider.StartCopy(ctx, good)
			if err != nil {
				t.Fatal(err)
			}
			bh, err := e.provider.StartCopy(ctx, bad)
			if err != nil {
				t.Fatal(err)
			}
			tasks := append(tasksFor(good, gh), tasksFor(bad, bh)...)
			e.faults.Add(emucore.Rule{Provider: alibabaemu.ProviderAppStream, Action: alibabaemu.ActionListImage, Kind: kind, Match: "imgc-demolnx00001"})
			// The healthy copy settles while the other image cannot be read at all.
			var st []domain.CopyStatus
			testEventually(t, func() (bool, string) {
				st, err = e.provider.CopyStatus(ctx, tasks)
				if err != nil {
					t.Fatalf("CopyStatus failed for the whole batch: %v", err)
				}
				return st[0].Phase == domain.PhaseSucceeded, string(st[0].Phase)
			})
			if st[1].Phase != PhaseUnknown || st[1].Code == "" || !strings.Contains(st[1].Message, "imgc-demolnx00001") {
				t.Fatalf("unreadable copy: %+v, want PhaseUnknown naming the image and the code", st[1])
			}
			// Once the image can be read again, its copy is followed as usual.
			e.faults.Clear()
			if st := pollUntilSettled(t, e.provider, tasks); st[1].Phase != domain.PhaseSucceeded {
				t.Fatalf("after the fault: %+v", st[1])
			}
		})
	}
	// When no image of the batch can be read, the cause is most likely the account's: the
	// whole call fails, so the poller classifies it once for every copy.
	e := newEnv(t, emuSeed())
	e.faults.Add(emucore.Rule{Provider: alibabaemu.ProviderAppStream, Action: alibabaemu.ActionListImage, Kind: emucore.FaultServer})
	req := copyRequest("imgc-demodesk0001", "iv-demodesk0001", "cn-beijing")
	if _, err := e.provider.CopyStatus(context.Background(), tasksFor(req, []domain.Handle{{Region: "cn-beijing", TaskID: "tid-x"}})); err == nil {
		t.Fatal("a batch whose every listing failed did not fail")
	}
}

// A terminal error for one image (access to that image denied) fails only its copies, with
// the provider's code and hint.
func TestUnreadStatusOfATerminalError(t *testing.T) {
	task := domain.Task{TaskID: "tid-x"}
	task.ImageID = "imgc-denied00001"
	st := unreadStatus(task, classifyCode(ActionListImage, "Forbidden.RAM", "denied", "req-1", 403, 0))
	if st.Phase != domain.PhaseFailed || st.Code != "Forbidden.RAM" || !strings.Contains(st.Message, "imgc-denied00001") || !strings.Contains(st.Message, "grant the RAM user") {
		t.Fatalf("terminal: %+v", st)
	}
	st = unreadStatus(task, classifyCode(ActionListImage, "Throttling.User", "slow down", "req-2", 400, 0))
	if st.Phase != PhaseUnknown || st.Code != "Throttling.User" {
		t.Fatalf("retryable: %+v", st)
	}
}

// testEventually polls cond until it holds, for at most five seconds.
func testEventually(t *testing.T, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in time; last: %s", last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
