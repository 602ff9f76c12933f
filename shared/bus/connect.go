package bus

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// ConnectOptions describe an external NATS server or cluster.
type ConnectOptions struct {
	// URL is one or more comma-separated server URLs.
	URL string
	// CredsFile is a NATS credentials (JWT + nkey) file.
	CredsFile string
	// CAFile, CertFile and KeyFile configure TLS; CertFile and KeyFile go together.
	CAFile, CertFile, KeyFile string
	// Name is the connection name shown by the server.
	Name string
	// FailFast makes the first connection attempt fail at once when no server answers (for
	// short-lived tools); otherwise it keeps trying, so a worker may start before its server.
	FailFast bool
}

// Connect opens a connection to an external NATS, retrying the first connect for a while so
// a worker started together with its server does not fail.
func Connect(o ConnectOptions) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.RetryOnFailedConnect(!o.FailFast),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.CAFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile))
	}
	if o.CertFile != "" || o.KeyFile != "" {
		if o.CertFile == "" || o.KeyFile == "" {
			return nil, fmt.Errorf("%w: TLS needs both a certificate and a key file", ErrInvalidConfig)
		}
		opts = append(opts, nats.ClientCert(o.CertFile, o.KeyFile))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect to %s: %w", o.URL, err)
	}
	return nc, nil
}
