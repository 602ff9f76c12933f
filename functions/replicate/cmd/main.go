// Command replicate runs the replicate function on AWS Lambda, Alibaba Cloud Function Compute or as a
// NATS JetStream worker, whichever its environment names (see shared/runtime). It links only
// its own wiring (shared/compose/replicatewire): its core and the adapters it calls.
package main

import (
	"github.com/imagerelay/imagerelay/shared/compose/replicatewire"
	"github.com/imagerelay/imagerelay/shared/runtime"
)

func main() { runtime.Main(replicatewire.Function()) }
