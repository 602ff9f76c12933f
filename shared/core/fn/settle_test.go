package fn_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/shared/core/fn"
)

// fake records what Settle asked a runtime to do, in order.
type fake struct {
	d                          fn.Redelivery
	publishErr, schedErr, dErr error
	permanent                  error
	calls                      []string
	sched                      fn.Schedule
	reason                     error
	delay                      time.Duration
}

func (f *fake) Publish(_ context.Context, evs ...event.Event) error {
	f.calls = append(f.calls, "publish")
	return f.publishErr
}
func (f *fake) Ack(context.Context) { f.calls = append(f.calls, "ack") }
func (f *fake) Schedule(_ context.Context, s fn.Schedule) error {
	f.calls = append(f.calls, "schedule")
	f.sched = s
	return f.schedErr
}
func (f *fake) Redeliver(_ context.Context, delay time.Duration, _ error) {
	f.calls = append(f.calls, "redeliver")
	f.delay = delay
}
func (f *fake) DeadLetter(_ context.Context, reason error) error {
	f.calls = append(f.calls, "deadletter")
	f.reason = reason
	return f.dErr
}
func (f *fake) Redelivery() fn.Redelivery { return f.d }
func (f *fake) Permanent(err error) bool  { return f.permanent != nil && errors.Is(err, f.permanent) }

// The table of fn.Settle's doc comment, row by row, for the NATS worker (a limit of its own)
// and a serverless platform (no limit: the platform redelivers).
func TestSettle(t *testing.T) {
	boom := errors.New("boom")
	tooBig := errors.New("too large")
	worker := fn.Redelivery{Count: 2, Limit: 5, Backoff: 3 * time.Second}
	last := fn.Redelivery{Count: 5, Limit: 5, Backoff: 3 * time.Second}
	lambda := fn.Redelivery{Count: 1}
	deferred := fn.Result{Outcome: fn.Outcome{Kind: fn.KindDefer, Delay: time.Minute, Key: "k", TTL: time.Hour}}
	tests := []struct {
		name  string
		f     fake
		r     fn.Result
		want  fn.Kind
		calls string
		check func(t *testing.T, f *fake, got fn.Outcome)
	}{
		{name: "done", f: fake{d: worker}, r: fn.Done(), want: fn.KindDone, calls: "publish ack"},
		{name: "defer", f: fake{d: lambda}, r: deferred, want: fn.KindDefer, calls: "publish schedule ack",
			check: func(t *testing.T, f *fake, _ fn.Outcome) {
				if f.sched.Delay != time.Minute || f.sched.Key != "k" || f.sched.TTL != time.Hour || f.sched.Failure != nil {
					t.Errorf("schedule = %+v", f.sched)
				}
			}},
		{name: "worker retry is scheduled and counted", f: fake{d: worker}, r: fn.Retry(0, boom), want: fn.KindRetry, calls: "publish schedule ack",
			check: func(t *testing.T, f *fake, _ fn.Outcome) {
				if f.sched.Delay != 3*time.Second || !errors.Is(f.sched.Failure, boom) {
					t.Errorf("schedule = %+v, want the back-off and the failure", f.sched)
				}
			}},
		{name: "worker retry keeps the core's delay", f: fake{d: worker}, r: fn.Retry(time.Minute, boom), want: fn.KindRetry, calls: "publish schedule ack",
			check: func(t *testing.T, f *fake, got fn.Outcome) {
				if f.sched.Delay != time.Minute || got.Delay != time.Minute {
					t.Errorf("schedule = %+v, outcome %+v", f.sched, got)
				}
			}},
		{name: "worker retry at the limit is dead-lettered", f: fake{d: last}, r: fn.Retry(0, boom), want: fn.KindReject, calls: "publish deadletter",
			check: func(t *testing.T, f *fake, _ fn.Outcome) {
				if !errors.Is(f.reason, boom) || !strings.Contains(f.reason.Error(), "gave up after 5 deliveries") {
					t.Errorf("reason = %v", f.reason)
				}
			}},
		{name: "serverless retry is redelivered by the platform", f: fake{d: lambda}, r: fn.Retry(time.Second, boom), want: fn.KindRetry, calls: "publish redeliver",
			check: func(t *testing.T, f *fake, got fn.Outcome) {
				if f.delay != time.Second || !errors.Is(got.Err, boom) {
					t.Errorf("delay %v, outcome %+v", f.delay, got)
				}
			}},
		{name: "reject", f: fake{d: lambda}, r: fn.Reject(boom), want: fn.KindReject, calls: "publish deadletter"},
		{name: "reject without a reason still says so", f: fake{d: worker}, r: fn.Result{Outcome: fn.Outcome{Kind: fn.KindReject}}, want: fn.KindReject, calls: "publish deadletter",
			check: func(t *testing.T, f *fake, _ fn.Outcome) {
				if f.reason == nil || f.reason.Error() == "" {
					t.Error("no reason")
				}
			}},
		{name: "publish fails: redeliver after the back-off", f: fake{d: worker, publishErr: boom}, r: fn.Done(), want: fn.KindRetry, calls: "publish redeliver",
			check: func(t *testing.T, f *fake, _ fn.Outcome) {
				if f.delay != 3*time.Second {
					t.Errorf("delay = %v", f.delay)
				}
			}},
		{name: "publish fails for good: dead letter", f: fake{d: worker, publishErr: tooBig, permanent: tooBig}, r: fn.Done(), want: fn.KindReject, calls: "publish deadletter"},
		{name: "publish fails at the limit: dead letter", f: fake{d: last, publishErr: boom}, r: fn.Done(), want: fn.KindReject, calls: "publish deadletter"},
		{name: "publish fails on a serverless platform: deliver again", f: fake{d: fn.Redelivery{Count: 99}, publishErr: boom}, r: fn.Reject(boom), want: fn.KindRetry, calls: "publish redeliver"},
		{name: "schedule fails: redeliver, no ack", f: fake{d: worker, schedErr: boom}, r: deferred, want: fn.KindRetry, calls: "publish schedule redeliver"},
		{name: "schedule fails for good: dead letter", f: fake{d: worker, schedErr: tooBig, permanent: tooBig}, r: deferred, want: fn.KindReject, calls: "publish schedule deadletter"},
		{name: "dead letter fails: redeliver", f: fake{d: worker, dErr: boom}, r: fn.Reject(boom), want: fn.KindRetry, calls: "publish deadletter redeliver"},
		{name: "unknown kind is dead-lettered", f: fake{d: worker}, r: fn.Result{Outcome: fn.Outcome{Kind: fn.Kind(42)}}, want: fn.KindReject, calls: "publish deadletter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			got := fn.Settle(context.Background(), &f, tt.r)
			if got.Kind != tt.want || strings.Join(f.calls, " ") != tt.calls {
				t.Fatalf("Settle = %s after %q, want %s after %q", got.Kind, strings.Join(f.calls, " "), tt.want, tt.calls)
			}
			if (got.Kind == fn.KindRetry || got.Kind == fn.KindReject) && got.Err == nil {
				t.Errorf("%s without a reason", got.Kind)
			}
			if tt.check != nil {
				tt.check(t, &f, got)
			}
		})
	}
}
