package events

import "strings"

// SubjectPrefix starts every NATS subject imagerelay publishes on.
const SubjectPrefix = "imagerelay."

// DeadLetterPrefix starts the dead-letter subjects: imagerelay.dlq.<function>.
const DeadLetterPrefix = SubjectPrefix + "dlq."

// CloudEventSubject returns the CloudEvent "subject" attribute: <provider>/<region>/<image id>.
func CloudEventSubject(provider, region, imageID string) string {
	return provider + "/" + region + "/" + imageID
}

// NATSSubject returns the NATS subject of an event: imagerelay.<name>.<provider>.<region>,
// so subscribers can filter by provider or region with wildcards.
func NATSSubject(eventType, provider, region string) string {
	return SubjectPrefix + ShortName(eventType) + "." + token(provider) + "." + token(region)
}

// NATSFilter returns the subject filter matching every event of a type.
func NATSFilter(eventType string) string {
	return SubjectPrefix + ShortName(eventType) + ".>"
}

// DeadLetterSubject returns the subject that collects the poison events of one function.
func DeadLetterSubject(function string) string { return DeadLetterPrefix + token(function) }

// token makes s safe as one NATS subject token: dots, spaces and wildcards would change the
// subject's shape, so they are replaced; an empty token becomes "_".
func token(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '.' || r == '*' || r == '>' || r <= ' ' || r > '~':
			return '_'
		}
		return r
	}, s)
}
