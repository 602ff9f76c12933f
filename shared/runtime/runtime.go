// Package runtime is the entry point of every function binary: it picks the runtime from the
// environment — AWS Lambda when AWS_LAMBDA_RUNTIME_API is set, Alibaba Cloud Function Compute
// when FC_RUNTIME_API is set, otherwise the NATS JetStream worker — and runs the named
// function's core on it. The core never knows which runtime hosts it.
//
// The runtime does not build the application: a function's main hands it the function as its
// wiring package (under shared/compose) builds it, in one line:
//
//	func main() { runtime.Main(fanoutwire.Function()) }
package runtime

import (
	"os"

	"github.com/imagerelay/imagerelay/shared/runtime/fcrt"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
	"github.com/imagerelay/imagerelay/shared/runtime/lambdart"
	"github.com/imagerelay/imagerelay/shared/runtime/worker"
)

// Kind is a runtime a function binary can run on.
type Kind int

const (
	// Worker is the NATS JetStream worker (the default).
	Worker Kind = iota
	// Lambda is AWS Lambda (aws-lambda-go).
	Lambda
	// FunctionCompute is Alibaba Cloud Function Compute 3.0 (fc-runtime-go-sdk).
	FunctionCompute
)

// String names the runtime.
func (k Kind) String() string {
	switch k {
	case Lambda:
		return "lambda"
	case FunctionCompute:
		return "fc"
	}
	return "worker"
}

// Detect returns the runtime the environment names.
func Detect(getenv func(string) string) Kind {
	switch {
	case getenv("AWS_LAMBDA_RUNTIME_API") != "":
		return Lambda
	case getenv("FC_RUNTIME_API") != "":
		return FunctionCompute
	}
	return Worker
}

// Function is what a function's main hands to [Main]: its name, how to open its session and
// the platform hooks (see host.Function).
type Function = host.Function

// Main runs f on the runtime the environment names. It does not return.
func Main(f Function) {
	switch Detect(os.Getenv) {
	case Lambda:
		lambdart.Main(f)
	case FunctionCompute:
		fcrt.Main(f)
	default:
		os.Exit(worker.Main(f))
	}
}
