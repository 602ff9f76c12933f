package natsembed

import "testing"

// TestSyncAlways checks that the option reaches the running server's JetStream, in both
// settings.
func TestSyncAlways(t *testing.T) {
	for _, want := range []bool{false, true} {
		srv, err := Start(Options{StoreDir: t.TempDir(), SyncAlways: want})
		if err != nil {
			t.Fatal(err)
		}
		got := srv.SyncAlways()
		srv.Shutdown()
		if got != want {
			t.Errorf("SyncAlways option %v: the server runs with %v", want, got)
		}
	}
}
