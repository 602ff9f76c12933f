// Command package builds every function for the serverless platforms, reproducibly, and
// reports each binary's size:
//
//   - AWS Lambda (provided.al2023): linux/arm64, CGO_ENABLED=0, -tags lambda.norpc, an
//     executable named bootstrap, zipped as dist/lambda/<function>.zip;
//   - Alibaba Cloud Function Compute (go1 runtime): linux/amd64, CGO_ENABLED=0, an executable
//     named main, zipped as dist/fc/<function>.zip.
//
// Builds use -trimpath, -buildvcs=false and an empty build id, and the zips have fixed
// timestamps (SOURCE_DATE_EPOCH when set, else 1980-01-01) and file modes, so the same source
// gives byte-identical zips. A configuration file given with -config is added to every zip as
// imagerelay.yaml, next to the binary, where the function binaries look for it.
//
// The functions are the directories functions/<name>/cmd. Run from the module root:
//
//	go run ./scripts/package [-out dist] [-config prod.yaml] [-target lambda,fc]
package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Target is one platform the functions are packaged for.
type Target struct {
	// Name is the platform, and the directory under the output directory.
	Name string
	// GOOS and GOARCH select the platform.
	GOOS, GOARCH string
	// Tags are the build tags.
	Tags []string
	// Binary is the executable's name in the zip.
	Binary string
}

// Targets are the platforms `make package` builds for.
var Targets = []Target{
	{Name: "lambda", GOOS: "linux", GOARCH: "arm64", Tags: []string{"lambda.norpc"}, Binary: "bootstrap"},
	// lambda.norpc also applies here: every function binary links aws-lambda-go, and its net/rpc
	// shim (only the retired go1.x Lambda runtime used it) costs about 7 MB.
	{Name: "fc", GOOS: "linux", GOARCH: "amd64", Tags: []string{"lambda.norpc"}, Binary: "main"},
}

// Artifact is one packaged function.
type Artifact struct {
	Function   string
	Target     string
	Zip        string
	BinarySize int64
	ZipSize    int64
	SHA256     string
}

func main() {
	out := flag.String("out", "dist", "output directory")
	cfg := flag.String("config", "", "configuration file to add to every zip as imagerelay.yaml")
	targets := flag.String("target", "lambda,fc", "comma-separated targets: lambda, fc")
	flag.Parse()
	arts, err := run(*out, *cfg, strings.Split(*targets, ","))
	if err != nil {
		fmt.Fprintln(os.Stderr, "package:", err)
		os.Exit(1)
	}
	report(os.Stdout, arts)
}

func run(out, cfg string, targetNames []string) ([]Artifact, error) {
	functions, err := Functions(".")
	if err != nil {
		return nil, err
	}
	var config []byte
	if cfg != "" {
		if config, err = os.ReadFile(cfg); err != nil {
			return nil, fmt.Errorf("read configuration: %w", err)
		}
	}
	mtime, err := ZipTime(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return nil, err
	}
	var arts []Artifact
	for _, name := range targetNames {
		i := slices.IndexFunc(Targets, func(t Target) bool { return t.Name == strings.TrimSpace(name) })
		if i < 0 {
			return nil, fmt.Errorf("unknown target %q (lambda, fc)", name)
		}
		tg := Targets[i]
		for _, fn := range functions {
			a, err := build(out, tg, fn, config, mtime)
			if err != nil {
				return nil, err
			}
			arts = append(arts, a)
		}
	}
	return arts, nil
}

// Functions lists the functions under root: every functions/<name>/cmd directory.
func Functions(root string) ([]string, error) {
	mains, err := filepath.Glob(filepath.Join(root, "functions", "*", "cmd", "main.go"))
	if err != nil {
		return nil, err
	}
	if len(mains) == 0 {
		return nil, errors.New("no functions/<name>/cmd/main.go found; run from the module root")
	}
	var names []string
	for _, m := range mains {
		names = append(names, filepath.Base(filepath.Dir(filepath.Dir(m))))
	}
	slices.Sort(names)
	return names, nil
}

// BuildArgs returns the go build arguments for one function and target.
func BuildArgs(tg Target, function, output string) []string {
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}
	if len(tg.Tags) > 0 {
		args = append(args, "-tags", strings.Join(tg.Tags, ","))
	}
	return append(args, "-o", output, "./functions/"+function+"/cmd")
}

// build compiles one function for tg and zips it.
func build(out string, tg Target, function string, config []byte, mtime time.Time) (Artifact, error) {
	dir := filepath.Join(out, tg.Name, function)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Artifact{}, err
	}
	bin := filepath.Join(dir, tg.Binary)
	cmd := exec.Command("go", BuildArgs(tg, function, bin)...)
	cmd.Env = append(os.Environ(), "GOOS="+tg.GOOS, "GOARCH="+tg.GOARCH, "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return Artifact{}, fmt.Errorf("build %s for %s: %w", function, tg.Name, err)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		return Artifact{}, err
	}
	files := []File{{Name: tg.Binary, Mode: 0o755, Data: exe}}
	if config != nil {
		files = append(files, File{Name: "imagerelay.yaml", Mode: 0o644, Data: config})
	}
	var buf bytes.Buffer
	if err := WriteZip(&buf, files, mtime); err != nil {
		return Artifact{}, err
	}
	zipPath := filepath.Join(out, tg.Name, function+".zip")
	if err := os.WriteFile(zipPath, buf.Bytes(), 0o644); err != nil {
		return Artifact{}, err
	}
	sum := sha256.Sum256(buf.Bytes())
	return Artifact{Function: function, Target: tg.Name + " " + tg.GOOS + "/" + tg.GOARCH, Zip: zipPath,
		BinarySize: int64(len(exe)), ZipSize: int64(buf.Len()), SHA256: hex.EncodeToString(sum[:])}, nil
}

// File is one entry of a zip.
type File struct {
	Name string
	Mode os.FileMode
	Data []byte
}

// ZipTime returns the timestamp of every zip entry: SOURCE_DATE_EPOCH when set, else the
// earliest time a zip can hold (1980-01-01), so that rebuilding gives the same bytes.
func ZipTime(sourceDateEpoch string) (time.Time, error) {
	if sourceDateEpoch == "" {
		return time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC), nil
	}
	s, err := strconv.ParseInt(sourceDateEpoch, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", sourceDateEpoch)
	}
	t := time.Unix(s, 0).UTC()
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return t, nil
}

// WriteZip writes files, in order, with mtime and their modes: the same input always gives
// the same bytes.
func WriteZip(w io.Writer, files []File, mtime time.Time) error {
	zw := zip.NewWriter(w)
	for _, f := range files {
		h := &zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: mtime}
		h.SetMode(f.Mode)
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if _, err := fw.Write(f.Data); err != nil {
			return err
		}
	}
	return zw.Close()
}

// report prints one line per artifact with the binary's size.
func report(w io.Writer, arts []Artifact) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "function\ttarget\tbinary\tzip\tsha256 (zip)\tartifact\t")
	for _, a := range arts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", a.Function, a.Target, size(a.BinarySize), size(a.ZipSize), a.SHA256[:16], a.Zip)
	}
	_ = tw.Flush()
}

func size(n int64) string {
	return fmt.Sprintf("%.1f MiB (%d B)", float64(n)/(1<<20), n)
}
