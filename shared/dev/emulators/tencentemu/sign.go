package tencentemu

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

const (
	tc3Algorithm      = "TC3-HMAC-SHA256"
	signatureValidity = 5 * time.Minute
	unsignedPayload   = "UNSIGNED-PAYLOAD"
)

// authorization is the parsed Authorization header of a TC3-HMAC-SHA256 request.
type authorization struct {
	SecretID      string
	Date          string
	Service       string
	Terminator    string
	SignedHeaders []string
	Signature     string
}

// parseAuthorization reads
// "TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request, SignedHeaders=a;b, Signature=<hex>".
func parseAuthorization(h string) (authorization, bool) {
	f, ok := emucore.AuthParams(h, tc3Algorithm)
	if !ok {
		return authorization{}, false
	}
	// The SecretId never contains "/", so the scope is the last three parts.
	scope := strings.Split(f["Credential"], "/")
	if len(scope) != 4 {
		return authorization{}, false
	}
	a := authorization{SecretID: scope[0], Date: scope[1], Service: scope[2], Terminator: scope[3],
		SignedHeaders: strings.Split(f["SignedHeaders"], ";"), Signature: f["Signature"]}
	// Tencent requires content-type and host among the signed headers.
	if a.SecretID == "" || a.Signature == "" || !slices.Contains(a.SignedHeaders, "content-type") || !slices.Contains(a.SignedHeaders, "host") {
		return a, false
	}
	return a, true
}

// canonicalRequest rebuilds what the client signed, the way tencentcloud-sdk-go builds it in
// sendWithSignatureV3: method, "/", the query (GET only), the signed headers, their names and
// the hex SHA-256 of the payload.
func canonicalRequest(r *http.Request, signed []string, body []byte) string {
	var hdrs strings.Builder
	for _, name := range signed {
		name = strings.ToLower(strings.TrimSpace(name))
		v := r.Header.Get(name)
		if name == "host" {
			v = r.Host
		}
		hdrs.WriteString(name + ":" + strings.TrimSpace(v) + "\n")
	}
	payloadHash := sha256hex(body)
	if r.Header.Get("X-TC-Content-SHA256") == unsignedPayload {
		payloadHash = sha256hex([]byte(unsignedPayload))
	}
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	return strings.Join([]string{r.Method, path, r.URL.RawQuery, hdrs.String(), strings.Join(signed, ";"), payloadHash}, "\n")
}

// expectedSignature computes the TC3-HMAC-SHA256 signature for the request.
func expectedSignature(secretKey, timestamp, date, service, canonical string) string {
	scope := date + "/" + service + "/tc3_request"
	stringToSign := tc3Algorithm + "\n" + timestamp + "\n" + scope + "\n" + sha256hex([]byte(canonical))
	kDate := hmacSHA256([]byte("TC3"+secretKey), date)
	kService := hmacSHA256(kDate, service)
	kSigning := hmacSHA256(kService, "tc3_request")
	return hex.EncodeToString(hmacSHA256(kSigning, stringToSign))
}

// verify checks the request's TC3 signature and returns the SecretId and an error code
// ("" when the signature is good).
func (e *Emulator) verify(r *http.Request, body []byte, now time.Time) (secretID, code, msg string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", "AuthFailure.InvalidAuthorization", "The Authorization header is missing."
	}
	a, ok := parseAuthorization(h)
	if !ok {
		return "", "AuthFailure.InvalidAuthorization", "The Authorization header is not a valid TC3-HMAC-SHA256 authorization."
	}
	cred, ok := e.creds[a.SecretID]
	if !ok {
		return a.SecretID, "AuthFailure.SecretIdNotFound", "The SecretId is not found, please ensure that your SecretId is correct."
	}
	ts, err := strconv.ParseInt(r.Header.Get("X-TC-Timestamp"), 10, 64)
	if err != nil {
		return a.SecretID, "AuthFailure.InvalidAuthorization", "X-TC-Timestamp must be a Unix time in seconds."
	}
	t := time.Unix(ts, 0).UTC()
	if skew := now.Sub(t); skew > signatureValidity || skew < -signatureValidity {
		return a.SecretID, "AuthFailure.SignatureExpire",
			"Signature expired. Timestamp is " + t.Format(time.RFC3339) + ", server time is " + now.UTC().Format(time.RFC3339) + "; the difference must be within 5 minutes."
	}
	if a.Date != t.Format(time.DateOnly) || a.Service != "cvm" || a.Terminator != "tc3_request" {
		return a.SecretID, "AuthFailure.SignatureFailure", "The credential scope must be <date of X-TC-Timestamp>/cvm/tc3_request."
	}
	want := expectedSignature(cred.SecretKey, r.Header.Get("X-TC-Timestamp"), a.Date, a.Service, canonicalRequest(r, a.SignedHeaders, body))
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(a.Signature))) {
		return a.SecretID, "AuthFailure.SignatureFailure", "The provided credentials could not be validated. Please check your signature is correct."
	}
	if cred.Token != "" && r.Header.Get("X-TC-Token") != cred.Token {
		return a.SecretID, "AuthFailure.TokenFailure", "The X-TC-Token of these temporary credentials is missing or wrong."
	}
	return a.SecretID, "", ""
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
