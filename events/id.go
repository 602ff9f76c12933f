package events

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// DeriveID returns the deterministic id of an event caused by the event causeID: a hash of the
// cause, the derived type and the parts that tell siblings apart (region, desktop, attempt).
// A redelivered cause therefore yields the same ids, and JetStream drops the duplicate publish
// because Nats-Msg-Id is the event id.
func DeriveID(causeID, eventType string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte(causeID))
	h.Write([]byte{0})
	h.Write([]byte(eventType))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ReplicationKey is the identity of one copy: provider/account/image/version/region. It keys
// the KV record that makes replicate idempotent and that imagerelay status reads.
func ReplicationKey(r Replication) string {
	return strings.Join([]string{r.Provider, orDefault(r.Account), r.ImageID, orUnversioned(r.VersionID), r.DestinationRegion}, "/")
}

// ImageKey is the identity of one image version across its destinations.
func ImageKey(i Image) string {
	return strings.Join([]string{i.Provider, orDefault(i.Account), i.ImageID, orUnversioned(i.VersionID)}, "/")
}

func orDefault(account string) string {
	if account == "" {
		return "default"
	}
	return account
}

func orUnversioned(v string) string {
	if v == "" {
		return "-"
	}
	return v
}
