package emucore

import (
	"maps"
	"testing"
)

func TestAuthParams(t *testing.T) {
	tests := []struct {
		header string
		ok     bool
		want   map[string]string
	}{
		{"TC3-HMAC-SHA256 Credential=AK/2026-01-02/cvm/tc3_request, SignedHeaders=content-type;host, Signature=ab12", true,
			map[string]string{"Credential": "AK/2026-01-02/cvm/tc3_request", "SignedHeaders": "content-type;host", "Signature": "ab12"}},
		{"TC3-HMAC-SHA256 Signature=a=b,Broken", true, map[string]string{"Signature": "a=b", "Broken": ""}},
		{"ACS3-HMAC-SHA256 Credential=AK", false, nil},
		{"TC3-HMAC-SHA256", false, nil},
	}
	for _, tt := range tests {
		got, ok := AuthParams(tt.header, "TC3-HMAC-SHA256")
		if ok != tt.ok || !maps.Equal(got, tt.want) {
			t.Errorf("AuthParams(%q) = %v, %v; want %v, %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}
