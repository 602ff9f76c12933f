package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode"
)

// EnvPrefix starts every override variable's name.
const EnvPrefix = "IMAGERELAY_"

// EnvVar describes one environment variable that overrides a configuration value.
type EnvVar struct {
	// Name is the variable, e.g. IMAGERELAY_NATS_STORE_DIR.
	Name string
	// Path is the value it overrides, e.g. nats.storeDir.
	Path string
	// Type says what the value must look like: text, whole number, number, true/false or
	// duration.
	Type string
}

// EnvVars lists every override variable, in the order of the Config struct. Each scalar value
// has one: its YAML path in upper snake case after EnvPrefix. Lists, maps and policies have
// none, because a flat variable cannot say which element it means.
func EnvVars() []EnvVar {
	var out []EnvVar
	walkScalars(reflect.ValueOf(Defaults()).Elem(), nil, func(p fieldPath, _ reflect.Value) {
		out = append(out, EnvVar{Name: envName(p), Path: p.String(), Type: typeWord(p, configType)})
	})
	return out
}

// applyEnv overrides cfg's scalar values from IMAGERELAY_* variables and records which
// variable set which path, so later validation errors can name the variable.
func applyEnv(cfg *Config, getenv func(string) string) Errors {
	var errs Errors
	walkScalars(reflect.ValueOf(cfg).Elem(), nil, func(p fieldPath, v reflect.Value) {
		name := envName(p)
		raw := getenv(name)
		if raw == "" {
			return
		}
		if err := setScalar(v, strings.TrimSpace(raw)); err != nil {
			errs = append(errs, &Error{Env: name, Path: p.String(), Problem: err.Error(), Fix: "set " + name + " to " + example(v), Err: ErrType})
			return
		}
		if cfg.src != nil {
			cfg.src.env[p.String()] = name
		}
	})
	return errs
}

// walkScalars calls fn for every overridable value under v: strings, numbers, booleans and
// durations reached through nested structs. Pointers, slices and maps are skipped.
func walkScalars(v reflect.Value, p fieldPath, fn func(fieldPath, reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		fv := v.Field(i)
		fp := p.key(name)
		switch {
		case f.Type == durationType:
			fn(fp, fv)
		case f.Type.Kind() == reflect.Struct:
			walkScalars(fv, fp, fn)
		case isScalarKind(f.Type.Kind()):
			fn(fp, fv)
		}
	}
}

func isScalarKind(k reflect.Kind) bool {
	switch k {
	case reflect.String, reflect.Int, reflect.Float64, reflect.Bool:
		return true
	}
	return false
}

// envName turns a path into its variable: nats.storeDir → IMAGERELAY_NATS_STORE_DIR.
func envName(p fieldPath) string {
	parts := make([]string, 0, len(p))
	for _, s := range p {
		if k, ok := s.(string); ok {
			parts = append(parts, upperSnake(k))
		}
	}
	return EnvPrefix + strings.Join(parts, "_")
}

// upperSnake converts camelCase to UPPER_SNAKE: credsFile → CREDS_FILE, kvBucket → KV_BUCKET.
func upperSnake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if i > 0 && unicode.IsUpper(r) && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// setScalar parses raw into v by v's type, with the same rules as the YAML values.
func setScalar(v reflect.Value, raw string) error {
	if v.Type() == durationType {
		d, err := parseDuration(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", raw)
		}
		v.SetInt(int64(n))
	case reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%q is not a number", raw)
		}
		v.SetFloat(f)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("%q is not true or false", raw)
		}
		v.SetBool(b)
	}
	return nil
}

// example shows a well-formed value for v's type, for fixes.
func example(v reflect.Value) string {
	if v.Type() == durationType {
		return `a duration such as "30s" or "5m"`
	}
	switch v.Kind() {
	case reflect.Int:
		return "a whole number such as 3"
	case reflect.Float64:
		return "a number such as 10 or 2.5"
	case reflect.Bool:
		return "true or false"
	}
	return "a value"
}

// typeWord names the type of the value at p, for EnvVars.
func typeWord(p fieldPath, t reflect.Type) string {
	for _, s := range p {
		k, _ := s.(string)
		f, ok := fieldByKey(t, k)
		if !ok {
			return ""
		}
		t = f.Type
	}
	if t == durationType {
		return "duration"
	}
	switch t.Kind() {
	case reflect.Int:
		return "whole number"
	case reflect.Float64:
		return "number"
	case reflect.Bool:
		return "true/false"
	}
	return "text"
}
