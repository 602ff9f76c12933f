package events

import (
	"bytes"
	"encoding/json"
	"math/big"
	"reflect"
	"testing"
)

func TestWholeNumbers(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain integers untouched", `{"a":45,"b":-3,"c":[0,1]}`, `{"a":45,"b":-3,"c":[0,1]}`},
		{"fraction zero", `{"a":45.0}`, `{"a":45}`},
		{"exponent", `{"a":4.5e1,"b":1E2,"c":450e-1,"d":4.50E+1}`, `{"a":45,"b":100,"c":45,"d":45}`},
		{"negative and negative zero", `[-45.00,-0.0]`, `[-45,0]`},
		{"not whole stays", `{"a":4.5,"b":45.0000000000000000001,"c":1e-1}`, `{"a":4.5,"b":45.0000000000000000001,"c":1e-1}`},
		{"beyond int64 stays", `[1e19,9223372036854775808.0,1e400]`, `[1e19,9223372036854775808.0,1e400]`},
		{"largest int64", `[9223372036854775807.0,-9223372036854775808.0]`, `[9223372036854775807,-9223372036854775808]`},
		{"strings untouched", `{"45.0":"45.0","e":"1e2 \"2.0\" \\","n":2.0}`, `{"45.0":"45.0","e":"1e2 \"2.0\" \\","n":2}`},
		{"white space kept", "{ \"a\" : 1.0 ,\n\"b\":[ 2.0 ] }", "{ \"a\" : 1 ,\n\"b\":[ 2 ] }"},
		{"literals untouched", `[true,false,null,3.0]`, `[true,false,null,3]`},
		{"invalid JSON untouched", `{"a":01.0}`, `{"a":01.0}`},
		{"top-level number", `7.0`, `7`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(wholeNumbers([]byte(tt.in))); got != tt.want {
				t.Errorf("wholeNumbers(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestWholeNumbersKeepsInputWhenNothingChanges(t *testing.T) {
	in := []byte(`{"a":1.5,"b":"2.0"}`)
	if out := wholeNumbers(in); &out[0] != &in[0] {
		t.Error("wholeNumbers copied an input it did not change")
	}
}

// FuzzWholeNumbers: for valid JSON the rewrite keeps the document valid and every value
// equal, numbers compared exactly.
func FuzzWholeNumbers(f *testing.F) {
	for _, s := range []string{`{"a":45.0,"b":"4.5e1","c":[1e2,-0.0,1.5,1e400]}`, `[9223372036854775807.0]`, `"\\"1.0"`, `0.1e1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := wholeNumbers(in)
		if !json.Valid(in) {
			if !bytes.Equal(out, in) {
				t.Fatalf("rewrote invalid JSON %q to %q", in, out)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("rewrite of %q is not valid JSON: %q", in, out)
		}
		if a, b := exactValue(t, in), exactValue(t, out); !reflect.DeepEqual(a, b) {
			t.Fatalf("rewrite changed a value:\n in %q -> %v\nout %q -> %v", in, a, out, b)
		}
	})
}

// exactValue decodes JSON with numbers as exact rationals (as strings) for comparison.
func exactValue(t *testing.T, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case json.Number:
			if r, ok := new(big.Rat).SetString(string(v)); ok {
				return r.RatString()
			}
			return string(v) // beyond what big.Rat parses: must stay as written
		case []any:
			for i := range v {
				v[i] = walk(v[i])
			}
		case map[string]any:
			for k := range v {
				v[k] = walk(v[k])
			}
		}
		return v
	}
	return walk(v)
}
