// Package rules holds the rebuild function's policy rules: which copies a policy applies to,
// which desktops it selects, its maintenance window and the API's batch limit. They belong to
// the rebuild core (package rebuild re-exports them), and live apart from it so that the
// configuration's validation can use the very same rules without every function binary
// linking the rebuild core.
package rules
