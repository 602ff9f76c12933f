// Package domain is the domain model shared by the function cores and the cloud adapters:
// the image and the copy of it to one region, what a provider is asked to start and what it
// answers, the record that tracks one copy through its life, the plan of an image's copies,
// and the classified error every provider returns.
//
// It imports no wire type: the cores map events to these types at their edge, so a change of
// the event schema stops at the cores and never reaches a cloud adapter.
package domain
