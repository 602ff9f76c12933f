package host

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// EnvDrainBudget caps the time one scheduled invocation spends pulling work from JetStream
// (a Go duration such as 45s). Without it the budget is the invocation's deadline minus a
// safety margin. The opener reads it with [DrainCap] into Session.DrainCap.
const EnvDrainBudget = "IMAGERELAY_DRAIN_BUDGET"

// DrainCap reads EnvDrainBudget; 0 means no cap.
func DrainCap(getenv func(string) string) (time.Duration, error) {
	v := getenv(EnvDrainBudget)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("runtime: %s=%q is not a positive duration such as 45s", EnvDrainBudget, v)
	}
	return d, nil
}

// Function is what a function's main hands to the runtime: the runtime does not build the
// application, the composition root does, and the runtime only opens it when it needs it.
type Function struct {
	// Name is the function's name.
	Name string
	// Open returns the opener of the function's session, logging with log (the runtime's
	// logger: JSON on the worker and on Function Compute, Lambda's own on Lambda).
	Open func(log *slog.Logger) Opener
	// WithCredentials puts temporary cloud keys a platform hands one invocation (Function
	// Compute's STS keys for the function role) on that invocation's context, where the cloud
	// adapters find them. Nil drops them: the adapters then use the environment's keys.
	WithCredentials func(ctx context.Context, c Credentials) context.Context
}

// Credentials are temporary cloud keys a platform hands one invocation: an AccessKey pair
// and its security token. They live only as long as the invocation's context.
type Credentials struct {
	AccessKeyID     string
	AccessKeySecret string
	SecurityToken   string
}

// String names the key without its secret, so credentials never leak into logs.
func (c Credentials) String() string { return "credentials " + c.AccessKeyID }

// GoString is String, so %#v does not print the secret either.
func (c Credentials) GoString() string { return c.String() }

// LogValue logs only the key id.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.AccessKeyID) }
