// Package samples ships example image.published payloads: `imagerelay publish --file
// samples/tencent-web.yaml` publishes one, and the demo publishes all of them.
package samples

import "embed"

// FS holds every sample file.
//
//go:embed *.yaml
var FS embed.FS
