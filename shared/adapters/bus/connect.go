package bus

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ConnectOptions describe an external NATS server or cluster.
type ConnectOptions struct {
	// URL is one or more comma-separated server URLs.
	URL string
	// CredsFile is a NATS credentials (JWT + nkey) file.
	CredsFile string
	// Creds is the contents of a credentials file, for platforms that hand secrets over in
	// environment variables. It wins over CredsFile and is never written to disk.
	Creds []byte
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
	switch {
	case len(o.Creds) > 0:
		opt, err := userJWTAndSeed(o.Creds)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
	case o.CredsFile != "":
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

// userJWTAndSeed reads the user JWT and nkey seed out of the contents of a credentials file,
// checking both before the first connect so a pasted fragment fails with a clear error.
func userJWTAndSeed(creds []byte) (nats.Option, error) {
	jwt, err := nkeys.ParseDecoratedJWT(creds)
	if err != nil || !strings.HasPrefix(jwt, "eyJ") {
		return nil, fmt.Errorf("%w: the NATS credentials hold no user JWT; pass the whole .creds file (both the JWT and the seed blocks)", ErrInvalidConfig)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(creds)
	if err != nil {
		return nil, fmt.Errorf("%w: the NATS credentials hold no user nkey seed (%w); pass the whole .creds file", ErrInvalidConfig, err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("%w: the NATS credentials' seed: %w", ErrInvalidConfig, err)
	}
	return nats.UserJWTAndSeed(jwt, string(seed)), nil
}
