package main

import (
	"archive/zip"
	"bytes"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/shared/compose/catalog"
)

func TestWriteZipIsReproducible(t *testing.T) {
	files := []File{{Name: "bootstrap", Mode: 0o755, Data: bytes.Repeat([]byte("binary"), 1000)}, {Name: "imagerelay.yaml", Mode: 0o644, Data: []byte("nats: {}\n")}}
	mtime, err := ZipTime("")
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := WriteZip(&a, files, mtime); err != nil {
		t.Fatal(err)
	}
	if err := WriteZip(&b, files, mtime); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two zips of the same files differ")
	}
	zr, err := zip.NewReader(bytes.NewReader(a.Bytes()), int64(a.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 2 {
		t.Fatalf("%d entries", len(zr.File))
	}
	for i, f := range zr.File {
		if f.Name != files[i].Name || f.Mode().Perm() != files[i].Mode || !f.Modified.Equal(mtime) {
			t.Errorf("entry %d: %s %v %v", i, f.Name, f.Mode(), f.Modified)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		_ = rc.Close()
		if !bytes.Equal(data, files[i].Data) {
			t.Errorf("entry %s: content differs", f.Name)
		}
	}
}

func TestZipTime(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "", want: time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)},
		{in: "1751364000", want: time.Unix(1751364000, 0).UTC()},
		{in: "0", want: time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)},
		{in: "yesterday", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ZipTime(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && !got.Equal(tt.want)) {
			t.Errorf("ZipTime(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestBuildArgs(t *testing.T) {
	for _, tg := range Targets {
		args := strings.Join(BuildArgs(tg, "fanout", "out/x"), " ")
		for _, want := range []string{"-trimpath", "-buildvcs=false", "-buildid=", "-tags lambda.norpc", "./functions/fanout/cmd", "-o out/x"} {
			if !strings.Contains(args, want) {
				t.Errorf("%s: %q lacks %q", tg.Name, args, want)
			}
		}
	}
	lambda := Targets[slices.IndexFunc(Targets, func(t Target) bool { return t.Name == "lambda" })]
	if lambda.GOARCH != "arm64" || lambda.Binary != "bootstrap" {
		t.Errorf("lambda target %+v", lambda)
	}
	fc := Targets[slices.IndexFunc(Targets, func(t Target) bool { return t.Name == "fc" })]
	if fc.GOARCH != "amd64" || fc.Binary != "main" {
		t.Errorf("fc target %+v", fc)
	}
}

func TestFunctionsCoverTheCompositionRoot(t *testing.T) {
	root := filepath.Join("..", "..")
	got, err := Functions(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range catalog.FunctionNames {
		if !slices.Contains(got, name) {
			t.Errorf("function %s would not be packaged (found %v)", name, got)
		}
	}
	if _, err := Functions(t.TempDir()); err == nil {
		t.Error("an empty tree has functions")
	}
}
