package domain

import "fmt"

// Unavailable explains why a core has no client for provider, for the dead-letter reason of
// an event that needs one: the reason the client could not be built (missing credentials,
// say) when there is one, otherwise that the provider is not configured. Naming the real
// cause matters: "not configured" sends an operator to the file when the fix is a variable.
func Unavailable(provider string, reasons map[string]error) error {
	if err, ok := reasons[provider]; ok && err != nil {
		return fmt.Errorf("provider %q is not available: %w; fix it and publish the event again", provider, err)
	}
	return fmt.Errorf("provider %q is not configured; add it under providers: in imagerelay.yaml and publish the event again", provider)
}

// Pick returns the client of provider from clients, or the error that says why there is none
// (see [Unavailable]). Every core looks its provider up this way.
func Pick[P any](clients map[string]P, provider string, reasons map[string]error) (P, error) {
	if c, ok := clients[provider]; ok {
		return c, nil
	}
	var none P
	return none, Unavailable(provider, reasons)
}
