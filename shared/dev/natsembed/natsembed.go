// Package natsembed runs a nats-server with JetStream inside the process, for `imagerelay up`,
// the demo and tests. Function binaries for Lambda and Function Compute must not import it:
// they connect to an external NATS.
package natsembed

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options configures the embedded server.
type Options struct {
	// StoreDir is where JetStream keeps its file store. Required.
	StoreDir string
	// Listen is host:port for NATS clients; empty means no TCP listener (in-process only).
	Listen string
	// SyncAlways makes JetStream fsync every write (slower, safer; see README).
	SyncAlways bool
}

// Server is a running embedded nats-server.
type Server struct {
	ns *server.Server
}

// Start starts the server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("natsembed: a store directory is required")
	}
	if err := os.MkdirAll(o.StoreDir, 0o755); err != nil {
		return nil, fmt.Errorf("natsembed: create store directory: %w", err)
	}
	opts := &server.Options{
		ServerName: "imagerelay",
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoLog:      true,
		NoSigs:     true,
		SyncAlways: o.SyncAlways,
	}
	if o.Listen == "" {
		opts.DontListen = true
	} else {
		host, portStr, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsembed: listen address %q: %w", o.Listen, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return nil, fmt.Errorf("natsembed: listen port %q: %w", portStr, err)
		}
		opts.Host, opts.Port = host, port
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		if o.Listen != "" {
			return nil, fmt.Errorf("natsembed: server not ready; is %s already in use? set nats.listen (IMAGERELAY_NATS_LISTEN) to another address", o.Listen)
		}
		return nil, errors.New("natsembed: server not ready")
	}
	return &Server{ns: ns}, nil
}

// Connect opens a client connection to the server, in process (no TCP round trip).
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(s.ns), nats.Name("imagerelay")}, opts...)
	return nats.Connect("", opts...)
}

// ClientURL returns the TCP URL other programs can use, or "" when not listening.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// SyncAlways reports whether the running server fsyncs every JetStream write, as the
// operator asked with nats.syncAlways.
func (s *Server) SyncAlways() bool {
	jc := s.ns.JetStreamConfig()
	return jc != nil && jc.SyncAlways
}

// Shutdown stops the server and waits for it to finish.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
