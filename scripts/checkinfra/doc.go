// Package checkinfra holds the tests that keep the deployment files in step with the code:
// serverless.yml and infra/s.yaml deploy every function the composition root knows, from the
// artifacts `make package` builds, and the cloud policies under infra/ allow exactly the
// actions the providers call.
package checkinfra
