package bench

import (
	"io"
	"os"
	"testing"
	"time"
)

// output is where the smoke runs print their reports: the test log with -v, else nowhere.
func output() io.Writer {
	if testing.Verbose() {
		return os.Stdout
	}
	return io.Discard
}

// TestThroughputSmoke runs the throughput mode at its smallest: it must complete, and its
// counts must add up. It asserts nothing about speed.
func TestThroughputSmoke(t *testing.T) {
	o := DefaultThroughput()
	o.Images, o.Regions, o.Clouds, o.RawMessages, o.Dir = 3, 2, []string{Tencent, Alibaba, Huawei}, 500, t.TempDir()
	o.Timeout = 2 * time.Minute
	rep, err := RunThroughput(t.Context(), o, output())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replications != 6 || rep.Succeeded+rep.Failed != 6 || rep.Completed != 3 {
		t.Fatalf("replications %d, succeeded %d + failed %d, completed %d; want 6 = 6 and 3", rep.Replications, rep.Succeeded, rep.Failed, rep.Completed)
	}
	for _, raw := range []RawResult{rep.RawBefore, rep.RawAfter} {
		if raw.Messages != 500 || raw.Elapsed <= 0 {
			t.Fatalf("raw run %+v, want 500 messages", raw)
		}
	}
	// Every replication stores events, writes its record and reads it back.
	if rep.Ops.Events(rep.Stream) < 6 || rep.Ops.KVWrites() < 6 || rep.Ops.KVReads() < 6 {
		t.Fatalf("operations %+v: fewer events, KV writes or KV reads than replications", rep.Ops)
	}
	if len(rep.PerCloud) != 3 {
		t.Fatalf("settle times for %v, want every cloud", rep.PerCloud)
	}
}

// TestInFlightSmoke runs the in-flight mode with 200 copies and 1 s polls: every copy must
// start and stay in flight, and what the poll counts say must be consistent.
func TestInFlightSmoke(t *testing.T) {
	o := DefaultInFlight()
	o.Copies, o.Regions, o.Copy, o.Poll, o.Rounds, o.Dir = 200, 2, time.Hour, time.Second, 2, t.TempDir()
	o.StartTimeout = 2 * time.Minute
	rep, err := RunInFlight(t.Context(), o, output())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Started != 200 {
		t.Fatalf("%d copies started, want 200", rep.Started)
	}
	if rep.OnTime > rep.Distinct || rep.Distinct > rep.Started || rep.Asked < rep.Distinct || (rep.Asked > 0) != (rep.Calls > 0) {
		t.Fatalf("inconsistent poll counts: %d calls, %d ids asked, %d distinct, %d on time, %d started", rep.Calls, rep.Asked, rep.Distinct, rep.OnTime, rep.Started)
	}
	if rep.StoreBytes <= 0 || rep.ProcessRSS <= 0 || rep.StatusAll <= 0 {
		t.Fatalf("store %d B, RSS %d B, status %s: each must be measured", rep.StoreBytes, rep.ProcessRSS, rep.StatusAll)
	}
}
