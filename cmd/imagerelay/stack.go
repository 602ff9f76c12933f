package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/compose/catalog"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/dev/natsembed"
)

// stack is a running bus (embedded or external) with the functions on it.
type stack struct {
	server *natsembed.Server
	nc     *nats.Conn
	rt     *catalog.Runtime
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// startStack connects to (or embeds) NATS and opens the runtime. owner says that this command
// owns the stream and the bucket (up, demo) and may create or update them; an embedded server
// is always owned by the process that embeds it. Any other command binds to what exists.
func startStack(ctx context.Context, cfg *config.Config, log *slog.Logger, owner bool) (*stack, error) {
	s := &stack{}
	var err error
	if cfg.NATS.Embedded() {
		listen, _ := cfg.NATS.ListenAddr()
		s.server, err = natsembed.Start(natsembed.Options{StoreDir: cfg.NATS.StoreDir, Listen: listen, SyncAlways: cfg.NATS.SyncAlways})
		if err != nil {
			return nil, err
		}
		s.nc, err = s.server.Connect()
	} else {
		s.nc, err = compose.Connect(cfg, "imagerelay")
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	if owner || cfg.NATS.Embedded() {
		if err := compose.Retry(ctx, log, "setting up the stream", func(octx context.Context) error {
			return compose.Setup(octx, cfg, s.nc, log)
		}); err != nil {
			s.close()
			return nil, err
		}
	}
	err = compose.Retry(ctx, log, "binding to the stream", func(octx context.Context) error {
		var err error
		s.rt, err = catalog.Open(octx, cfg, s.nc, log)
		return err
	})
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// run starts the named functions in the background until stop.
func (s *stack) run(ctx context.Context, names []string) error {
	ctx, s.cancel = context.WithCancel(ctx)
	for _, name := range names {
		spec, err := s.rt.Spec(name)
		if err != nil {
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.rt.Bus.Run(ctx, spec); err != nil {
				s.rt.Log.Error("function stopped", "function", spec.Function, "error", err)
			}
		}()
	}
	return nil
}

// close stops the functions, then the connection and the embedded server.
func (s *stack) close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.nc != nil {
		_ = s.nc.Drain()
	}
	if s.server != nil {
		s.server.Shutdown()
	}
}
