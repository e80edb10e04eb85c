package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Two builds from the same inputs are byte for byte the same archive, and
// the timestamp is an input: the digests of a commit's image do not depend
// on when or where it was built.
func TestArchiveIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	for _, arch := range []string{"amd64", "arm64"} {
		if err := os.WriteFile(filepath.Join(dir, arch), []byte("not really a binary for "+arch), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	build := func(name, epoch string) []byte {
		t.Helper()
		out := filepath.Join(dir, name)
		args := []string{"--out", out, "--ref", "example.com/cnm:v1", "--version", "v1", "--source-date-epoch", epoch,
			"--binary", "linux/amd64=" + filepath.Join(dir, "amd64"), "--binary", "linux/arm64=" + filepath.Join(dir, "arm64")}
		if err := run(args, io.Discard); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	first, second := build("a.tar", "1700000000"), build("b.tar", "1700000000")
	if !bytes.Equal(first, second) {
		t.Fatal("two builds from the same inputs differ")
	}
	if bytes.Equal(first, build("c.tar", "1700000001")) {
		t.Fatal("--source-date-epoch did not reach the archive")
	}
}

func TestFlags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(bin, []byte("x"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ref", "r:t", "--version", "v", "--binary", "linux/amd64=" + bin}, "--out"},
		{[]string{"--out", "o", "--ref", "r:t", "--version", "v", "--binary", "linux=" + bin}, "OS/ARCH=PATH"},
		{[]string{"--out", "o", "--ref", "r:t", "--version", "v", "--binary", "linux/amd64=" + bin, "--binary", "linux/amd64=" + bin}, "twice"},
		{[]string{"--out", "o", "--ref", "r:t", "--binary", "linux/amd64=" + bin}, "--version"},
	} {
		err := run(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one mentioning %s", tc.args, err, tc.want)
		}
	}
}

// The Dockerfile's rootfs is the archive's files besides the binary.
func TestRootfs(t *testing.T) {
	dir := t.TempDir()
	if err := run([]string{"--rootfs", dir}, io.Discard); err != nil {
		t.Fatal(err)
	}
	files, err := rootFiles()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if int64(info.Mode().Perm()) != f.mode || !bytes.Equal(data, f.data) {
			t.Errorf("%s: mode %v, %d bytes; want %04o, %d bytes", f.path, info.Mode(), len(data), f.mode, len(f.data))
		}
	}
}
