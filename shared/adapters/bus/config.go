package bus

import (
	"errors"
	"fmt"
	"time"
)

// Config is how imagerelay uses JetStream: one stream for every event and one durable pull
// consumer per function.
type Config struct {
	// Stream is the stream's name; it captures every subject under "imagerelay.".
	Stream string
	// Replicas is the stream's replication factor (3 in a cluster).
	Replicas int
	// DuplicateWindow is how long JetStream remembers event ids to drop duplicate publishes.
	DuplicateWindow time.Duration
	// MaxAge bounds how long events stay in the stream.
	MaxAge time.Duration
	// MaxDeliver bounds the deliveries of one message that keeps failing (Retry); the
	// last failure sends it to the dead-letter subject.
	MaxDeliver int
	// AckWait is how long a delivered message may stay unacknowledged before redelivery.
	AckWait time.Duration
	// Backoff are the redelivery delays after unacknowledged deliveries (a crashed worker).
	Backoff []time.Duration
	// KVBucket is the key-value bucket of replication and rebuild records.
	KVBucket string
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Stream:          "IMAGERELAY",
		Replicas:        1,
		DuplicateWindow: 10 * time.Minute,
		MaxAge:          7 * 24 * time.Hour,
		MaxDeliver:      10,
		AckWait:         30 * time.Second,
		Backoff:         []time.Duration{time.Second, 5 * time.Second, 30 * time.Second},
		KVBucket:        "imagerelay",
	}
}

// ErrInvalidConfig is matched by configuration errors.
var ErrInvalidConfig = errors.New("bus: invalid configuration")

func (c Config) validate() error {
	switch {
	case c.Stream == "":
		return fmt.Errorf("%w: stream name is empty", ErrInvalidConfig)
	case c.MaxDeliver < 1:
		return fmt.Errorf("%w: maxDeliver must be at least 1", ErrInvalidConfig)
	case len(c.Backoff) > c.MaxDeliver:
		return fmt.Errorf("%w: %d backoff entries but maxDeliver %d; JetStream needs at most maxDeliver entries", ErrInvalidConfig, len(c.Backoff), c.MaxDeliver)
	case c.KVBucket == "":
		return fmt.Errorf("%w: kv bucket name is empty", ErrInvalidConfig)
	}
	return nil
}
