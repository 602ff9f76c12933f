package alibabaemu

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

const (
	acs3Algorithm = "ACS3-HMAC-SHA256"
	acsTimeFormat = "2006-01-02T15:04:05Z"
)

// verifyACS3 checks an ACS3-HMAC-SHA256 request (the darabonba client's default):
//
//	Authorization: ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<h1;h2>,Signature=<hex>
//
// over METHOD \n URI \n canonical query \n canonical headers \n signed headers \n
// hex(sha256(body)), where host, content-type and every x-acs-* header must be signed.
func (e *Emulator) verifyACS3(r *http.Request, body []byte, now time.Time) (Credential, *apiError) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return Credential{}, errf(http.StatusBadRequest, "MissingParameter", "The request carries neither an Authorization header (ACS3) nor a Signature query parameter (RPC v2).")
	}
	fields, ok := emucore.AuthParams(auth, acs3Algorithm)
	if !ok {
		return Credential{}, errf(http.StatusBadRequest, "IncompleteSignature", "The Authorization header must start with %s.", acs3Algorithm)
	}
	keyID, signedHeaders, signature := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	if keyID == "" || signedHeaders == "" || signature == "" {
		return Credential{}, errf(http.StatusBadRequest, "IncompleteSignature", "The Authorization header must carry Credential, SignedHeaders and Signature.")
	}
	cred, ok := e.creds[keyID]
	if !ok {
		return Credential{}, errf(http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
	}
	nonce := r.Header.Get("x-acs-signature-nonce")
	if aerr := checkTimeAndNonce(r.Header.Get("x-acs-date"), nonce, now); aerr != nil {
		return Credential{}, aerr
	}
	if aerr := checkToken(cred, r.Header.Get("x-acs-security-token")); aerr != nil {
		return Credential{}, aerr
	}
	if id := r.Header.Get("x-acs-accesskey-id"); id != "" && id != keyID {
		return Credential{}, errf(http.StatusBadRequest, "SignatureDoesNotMatch", "The x-acs-accesskey-id header does not match the Credential of the Authorization header.")
	}
	signed := strings.Split(signedHeaders, ";")
	for name := range r.Header {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "x-acs-") && !slices.Contains(signed, lower) {
			return Credential{}, errf(http.StatusBadRequest, "IncompleteSignature", "The header %s must be listed in SignedHeaders.", lower)
		}
	}
	if !slices.Contains(signed, "host") {
		return Credential{}, errf(http.StatusBadRequest, "IncompleteSignature", "The host header must be listed in SignedHeaders.")
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if got := r.Header.Get("x-acs-content-sha256"); got != payload {
		return Credential{}, errf(http.StatusBadRequest, "SignatureDoesNotMatch", "The x-acs-content-sha256 header does not match the SHA-256 of the request body.")
	}
	var canonHeaders strings.Builder
	for _, name := range signed {
		var vals []string
		if name == "host" {
			vals = []string{r.Host}
		} else {
			for _, v := range r.Header.Values(textproto.CanonicalMIMEHeaderKey(name)) {
				vals = append(vals, strings.TrimSpace(v))
			}
		}
		sort.Strings(vals)
		canonHeaders.WriteString(name + ":" + strings.Join(vals, ",") + "\n")
	}
	uri := r.URL.EscapedPath()
	if uri == "" {
		uri = "/"
	}
	canonical := r.Method + "\n" + rfc3986(uri) + "\n" + canonicalQuery(r.URL.Query()) + "\n" +
		canonHeaders.String() + "\n" + signedHeaders + "\n" + payload
	hashed := sha256.Sum256([]byte(canonical))
	stringToSign := acs3Algorithm + "\n" + hex.EncodeToString(hashed[:])
	mac := hmac.New(sha256.New, []byte(cred.AccessKeySecret))
	mac.Write([]byte(stringToSign))
	want := hex.EncodeToString(mac.Sum(nil))
	if subtle.ConstantTimeCompare([]byte(want), []byte(signature)) != 1 {
		return Credential{}, errf(http.StatusBadRequest, "SignatureDoesNotMatch", "The request signature does not conform to Aliyun standards. server string to sign is:%s", stringToSign)
	}
	return cred, e.useNonce(nonce, now)
}

// verifyV2 checks a legacy RPC request signed with HMAC-SHA1: Signature = base64(HMAC-SHA1(
// secret + "&", "POST&%2F&" + percentEncode(sorted query and form parameters))).
func (e *Emulator) verifyV2(r *http.Request, query, form url.Values, now time.Time) (Credential, *apiError) {
	keyID := query.Get("AccessKeyId")
	if keyID == "" {
		return Credential{}, errf(http.StatusBadRequest, "MissingParameter", "The input parameter AccessKeyId that is mandatory for processing this request is not supplied.")
	}
	if m := query.Get("SignatureMethod"); m != "HMAC-SHA1" {
		return Credential{}, errf(http.StatusBadRequest, "IncompleteSignature", "The SignatureMethod %q is not supported; use HMAC-SHA1.", m)
	}
	if v := query.Get("SignatureVersion"); v != "1.0" {
		return Credential{}, errf(http.StatusBadRequest, "IncompleteSignature", "The SignatureVersion %q is not supported; use 1.0.", v)
	}
	cred, ok := e.creds[keyID]
	if !ok {
		return Credential{}, errf(http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
	}
	nonce := query.Get("SignatureNonce")
	if aerr := checkTimeAndNonce(query.Get("Timestamp"), nonce, now); aerr != nil {
		return Credential{}, aerr
	}
	if aerr := checkToken(cred, query.Get("SecurityToken")); aerr != nil {
		return Credential{}, aerr
	}
	signedParams := url.Values{}
	for k, v := range query {
		if k != "Signature" {
			signedParams[k] = v
		}
	}
	for k, v := range form {
		signedParams[k] = v
	}
	stringToSign := r.Method + "&%2F&" + url.QueryEscape(rfc3986(signedParams.Encode()))
	mac := hmac.New(sha1.New, []byte(cred.AccessKeySecret+"&"))
	mac.Write([]byte(stringToSign))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if subtle.ConstantTimeCompare([]byte(want), []byte(query.Get("Signature"))) != 1 {
		return Credential{}, errf(http.StatusBadRequest, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation. server string to sign is:%s", stringToSign)
	}
	return cred, e.useNonce(nonce, now)
}

// checkTimeAndNonce rejects stale timestamps and a missing nonce.
func checkTimeAndNonce(stamp, nonce string, now time.Time) *apiError {
	t, err := time.Parse(acsTimeFormat, stamp)
	if err != nil {
		return errf(http.StatusBadRequest, "IllegalTimestamp", "The input parameter Timestamp (x-acs-date) %q is not in the format YYYY-MM-DDThh:mm:ssZ (UTC).", stamp)
	}
	if d := now.Sub(t); d > timestampSkew || d < -timestampSkew {
		return errf(http.StatusBadRequest, "IllegalTimestamp", "The input parameter Timestamp %s is more than 15 minutes away from the server time %s.", stamp, now.UTC().Format(acsTimeFormat))
	}
	if nonce == "" {
		return errf(http.StatusBadRequest, "MissingParameter", "The input parameter SignatureNonce (x-acs-signature-nonce) that is mandatory for processing this request is not supplied.")
	}
	return nil
}

// useNonce remembers a verified request's nonce for the timestamp window and rejects a
// replay. It is called only after the signature matched, so forged requests cannot burn
// nonces.
func (e *Emulator) useNonce(nonce string, now time.Time) *apiError {
	e.mu.Lock()
	defer e.mu.Unlock()
	if now.Sub(e.noncesPruned) > time.Minute {
		for n, seen := range e.nonces {
			if now.Sub(seen) > timestampSkew {
				delete(e.nonces, n)
			}
		}
		e.noncesPruned = now
	}
	if _, used := e.nonces[nonce]; used {
		return errf(http.StatusBadRequest, "SignatureNonceUsed", "Specified signature nonce was used already.")
	}
	e.nonces[nonce] = now
	return nil
}

// checkToken requires the STS token of temporary credentials.
func checkToken(c Credential, token string) *apiError {
	if c.SecurityToken == "" {
		return nil
	}
	if token == "" {
		return errf(http.StatusBadRequest, "InvalidSecurityToken.Malformed", "The AccessKey is temporary; the request must carry its security token.")
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(c.SecurityToken)) != 1 {
		return errf(http.StatusBadRequest, "InvalidSecurityToken.MismatchWithAccessKey", "The security token does not match the AccessKey.")
	}
	return nil
}

// canonicalQuery sorts the query by key and encodes each value the way the SDK does.
func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+url.QueryEscape(q.Get(k)))
	}
	return rfc3986(strings.Join(parts, "&"))
}

// rfc3986 turns Go's form encoding into the RFC 3986 encoding Alibaba signs.
func rfc3986(s string) string {
	return strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~").Replace(s)
}
