package natskv_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/adapters/state/natskv"
	"github.com/imagerelay/imagerelay/shared/adapters/state/statetest"
	"github.com/imagerelay/imagerelay/shared/dev/natsembed"
)

// open starts an embedded JetStream with file storage and opens a bucket on it.
func open(t *testing.T) *state.Store {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close(); srv.Shutdown() })
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := natskv.Open(context.Background(), js, "test", 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Bucket { return open(t).Bucket() })
}

// Every read of the bucket goes to the stream leader, so a decision read from it sees every
// write acknowledged before it, on a cluster too (direct gets may be answered by a replica
// that is behind).
func TestBucketReadsFromTheLeader(t *testing.T) {
	b := open(t).Bucket().(*natskv.Bucket)
	info, err := b.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.AllowDirect {
		t.Fatal("the bucket allows direct gets: reads may come from a replica that is behind")
	}
}
