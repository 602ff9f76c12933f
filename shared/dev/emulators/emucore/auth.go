package emucore

import "strings"

// AuthParams splits an Authorization header of the form
//
//	<algorithm> Key1=value1, Key2=value2, ...
//
// which Tencent (TC3), Alibaba (ACS3) and Huawei (SDK-HMAC-SHA256) all use, into its fields.
// ok is false when the header does not start with algorithm; a part without "=" maps to "",
// so each emulator's check of its required fields decides what is missing.
func AuthParams(header, algorithm string) (fields map[string]string, ok bool) {
	rest, ok := strings.CutPrefix(header, algorithm+" ")
	if !ok {
		return nil, false
	}
	fields = map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	return fields, true
}
