package alibaba

import (
	"context"
	"sync"
	"testing"
)

// Concurrent calls are safe: under -race this fails if requests share mutable SDK state
// (tea/dara's pooled client rewrites its timeout on every request).
func TestConcurrentCallsAreRaceFree(t *testing.T) {
	e := newEnv(t, emuSeed())
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				if _, err := e.desktops.ListDesktops(ctx, "cn-shanghai", DesktopFilter{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
