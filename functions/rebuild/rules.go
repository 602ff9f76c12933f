package rebuild

import "github.com/imagerelay/imagerelay/functions/rebuild/rules"

// The rebuild core's policy rules live in package rules (so that configuration validation
// shares them without linking this core); these names are the core's view of them.
type (
	// Policy is a rebuild policy: see rules.Policy.
	Policy = rules.Policy
	// Selector chooses desktops: see rules.Selector.
	Selector = rules.Selector
	// Window is a parsed maintenance window: see rules.Window.
	Window = rules.Window
)

// MaxBatchSize is the most desktops one RebuildDesktops call accepts (the API's limit).
const MaxBatchSize = rules.MaxBatchSize
