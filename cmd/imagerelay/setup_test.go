package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/shared/dev/natsembed"
)

// run executes the CLI with args and returns what it printed.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// Only `setup` (and up) create or change the stream: `publish` against a NATS without it
// says what to run, and after `setup`, a `publish` with other settings leaves it as it is.
// Today's main let every command rewrite the stream with its own settings: one `imagerelay
// publish` without the operator's file shrank max age from 720 h to 168 h.
func TestOnlySetupCreatesOrChangesTheStream(t *testing.T) {
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	dir := t.TempDir()
	operator := filepath.Join(dir, "operator.yaml")
	if err := os.WriteFile(operator, []byte("nats:\n  url: "+srv.ClientURL()+"\n  maxAge: 720h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(other, []byte("nats:\n  url: "+srv.ClientURL()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	publish := []string{"publish", "--provider", "tencent", "--image-id", "img-setup001", "--source-region", "ap-guangzhou"}

	if _, err := run(t, append([]string{"--config", other}, publish...)...); err == nil || !strings.Contains(err.Error(), "imagerelay setup") {
		t.Fatalf("publish before setup: %v, want an error naming imagerelay setup", err)
	}
	out, err := run(t, "--config", operator, "setup")
	if err != nil || !strings.Contains(out, "720h") {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	if _, err := run(t, append([]string{"--config", other}, publish...)...); err != nil {
		t.Fatalf("publish after setup: %v", err)
	}
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), "IMAGERELAY")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != 720*time.Hour {
		t.Fatalf("max age %v after a publish with default settings, want the operator's 720h", got)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("%d events stored, want 1", n)
	}
}
