// Command rebuild runs the rebuild function on AWS Lambda, Alibaba Cloud Function Compute or as
// a NATS JetStream worker, whichever its environment names (see shared/runtime).
package main

import "github.com/imagerelay/imagerelay/shared/runtime"

func main() { runtime.Main("rebuild") }
