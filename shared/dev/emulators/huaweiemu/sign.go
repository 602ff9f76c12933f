package huaweiemu

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

const (
	sdkHMACSHA256   = "SDK-HMAC-SHA256"
	sdkDateFormat   = "20060102T150405Z"
	unsignedPayload = "UNSIGNED-PAYLOAD"
	// clockSkew is how far X-Sdk-Date may be from the emulator's clock, as API Gateway allows.
	clockSkew = 15 * time.Minute
)

// authorization is a parsed "SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=a;b, Signature=<hex>".
type authorization struct {
	AK            string
	SignedHeaders []string
	Signature     string
}

func parseAuthorization(h string) (authorization, bool) {
	f, ok := emucore.AuthParams(h, sdkHMACSHA256)
	if !ok || f["Access"] == "" || f["Signature"] == "" || f["SignedHeaders"] == "" {
		return authorization{}, false
	}
	return authorization{AK: f["Access"], SignedHeaders: strings.Split(f["SignedHeaders"], ";"), Signature: f["Signature"]}, true
}

// canonicalRequest rebuilds what huaweicloud-sdk-go-v3 (core/auth/signer) signed:
//
//	METHOD \n URI (each segment escaped, always ending in '/') \n sorted query \n
//	name:value lines of the signed headers \n \n signed header names \n hex sha256(body)
//
// The body hash is replaced by X-Sdk-Content-Sha256 when the client sent UNSIGNED-PAYLOAD.
func canonicalRequest(r *http.Request, signed []string, body []byte) string {
	var hdrs strings.Builder
	for _, name := range signed {
		var values []string
		if name == "host" {
			values = []string{r.Host}
		} else {
			values = slices.Clone(r.Header.Values(name))
		}
		slices.Sort(values)
		for _, v := range values {
			hdrs.WriteString(name + ":" + strings.TrimSpace(v) + "\n")
		}
	}
	payload := r.Header.Get("X-Sdk-Content-Sha256")
	if payload != unsignedPayload {
		sum := sha256.Sum256(body)
		payload = hex.EncodeToString(sum[:])
	}
	return strings.Join([]string{
		r.Method,
		canonicalURI(r.URL.Path),
		canonicalQuery(r),
		hdrs.String(),
		strings.Join(signed, ";"),
		payload,
	}, "\n")
}

func canonicalURI(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = escape(s)
	}
	uri := strings.Join(segs, "/")
	if !strings.HasSuffix(uri, "/") {
		uri += "/"
	}
	return uri
}

// canonicalQuery sorts by key, then by value, and escapes both, as the SDK does before it
// encodes the query onto the URL.
func canonicalQuery(r *http.Request) string {
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		vals := slices.Clone(q[k])
		slices.Sort(vals)
		for _, v := range vals {
			parts = append(parts, escape(k)+"="+escape(v))
		}
	}
	return strings.Join(parts, "&")
}

// escape percent-encodes everything but unreserved characters (RFC 3986), upper-case hex.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '~' || c == '.' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte("0123456789ABCDEF"[c>>4])
		b.WriteByte("0123456789ABCDEF"[c&15])
	}
	return b.String()
}

// signature is hex(HMAC-SHA256(SK, "SDK-HMAC-SHA256\n<X-Sdk-Date>\n<hex sha256(canonical request)>")).
// The SK is the key as is: this scheme has no key derivation.
func signature(sk, sdkDate, canonical string) string {
	h := sha256.Sum256([]byte(canonical))
	sts := sdkHMACSHA256 + "\n" + sdkDate + "\n" + hex.EncodeToString(h[:])
	m := hmac.New(sha256.New, []byte(sk))
	m.Write([]byte(sts))
	return hex.EncodeToString(m.Sum(nil))
}
