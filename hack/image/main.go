// Command image writes the server's container image as an OCI archive (an
// OCI image layout in a tar file, what `skopeo copy oci-archive:` and
// `podman load` read): one image index over one image per platform, each a
// single layer holding the static binary, /etc/passwd and /etc/group with
// the non-root user, and a CA bundle for the clouds' TLS.
//
// It needs no container engine, no registry and no root: `make image` runs
// it on binaries `go build` cross-compiled. The output depends only on its
// inputs (fixed timestamps, sorted entries, gzip without a name or time),
// so two builds of one commit have the same digests.
//
// With --rootfs it writes the same passwd, group and CA bundle as plain
// files instead, for the Dockerfile's build stage: both ways produce the
// same files (test/image checks the Dockerfile against the archive).
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// What the image is; the Dockerfile says the same (test/image).
const (
	binaryPath = "k8s-cloud-node-manager"
	// The chart's runAsUser/runAsGroup; distroless calls it nonroot too.
	uid, gid = 65532, 65532
	// Where Go's crypto/x509 looks first on Linux (and Debian, Alpine and
	// distroless put the system bundle).
	caBundlePath = "etc/ssl/certs/ca-certificates.crt"
	servingPort  = "6443/tcp"
)

const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

type file struct {
	path string // without the leading slash
	mode int64
	data []byte
}

// rootFiles are the image's files besides the binary.
func rootFiles() ([]file, error) {
	ca, err := caBundle()
	if err != nil {
		return nil, err
	}
	// Home "/": the server writes nothing there, and the image has no
	// home directory to own.
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		fmt.Sprintf("nonroot:x:%d:%d:nonroot:/:/sbin/nologin\n", uid, gid)
	group := "root:x:0:\n" + fmt.Sprintf("nonroot:x:%d:\n", gid)
	return []file{
		{path: "etc/group", mode: 0o644, data: []byte(group)},
		{path: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{path: caBundlePath, mode: 0o644, data: ca},
	}, nil
}

// caBundle is Mozilla's NSS root store as x/crypto/x509roots packages it,
// pinned by go.sum, so the image's roots change only with that module's
// version (Debian's ca-certificates on the build machine would make the
// image depend on when the machine was updated). Roots NSS trusts only
// for certificates issued before a date cannot say so in a PEM file: they
// are left out rather than trusted without that limit.
func caBundle() ([]byte, error) {
	var buf bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			return nil, err
		}
	}
	if buf.Len() == 0 {
		return nil, errors.New("x509roots bundle is empty")
	}
	return buf.Bytes(), nil
}

type platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type blob struct {
	desc descriptor
	data []byte
}

func newBlob(mediaType string, data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{desc: descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))}, data: data}
}

func jsonBlob(mediaType string, v any) (blob, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return blob{}, err
	}
	return newBlob(mediaType, data), nil
}

// layer is the tar of the files with their parent directories, root-owned,
// sorted, at one fixed time.
func layer(files []file, mtime time.Time) ([]byte, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		var parents []string
		for d := filepath.Dir(f.path); d != "."; d = filepath.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
				return nil, err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.path, Mode: f.mode, Size: int64(len(f.data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func gzipped(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	// No name, no modification time in the header: same input, same bytes.
	zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type imageConfig struct {
	Created      string    `json:"created,omitempty"`
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Config       runConfig `json:"config"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []history `json:"history"`
}

type runConfig struct {
	User         string              `json:"User"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts"`
	Env          []string            `json:"Env"`
	Entrypoint   []string            `json:"Entrypoint"`
	Labels       map[string]string   `json:"Labels,omitempty"`
}

type history struct {
	Created   string `json:"created,omitempty"`
	CreatedBy string `json:"created_by"`
}

type options struct {
	out      string
	ref      string
	version  string
	source   string
	mtime    time.Time
	binaries []binaryFlag
}

type binaryFlag struct {
	platform platform
	path     string
}

// image is the per-platform manifest and the blobs it references.
func image(o options, b binaryFlag, files []file) (manifest blob, blobs []blob, uncompressed int64, err error) {
	bin, err := os.ReadFile(b.path)
	if err != nil {
		return blob{}, nil, 0, err
	}
	all := append([]file{{path: binaryPath, mode: 0o755, data: bin}}, files...)
	tarball, err := layer(all, o.mtime)
	if err != nil {
		return blob{}, nil, 0, err
	}
	gz, err := gzipped(tarball)
	if err != nil {
		return blob{}, nil, 0, err
	}
	layerBlob := newBlob(mediaTypeLayer, gz)
	diffID := sha256.Sum256(tarball)

	created := o.mtime.UTC().Format(time.RFC3339)
	cfg := imageConfig{
		Created:      created,
		Architecture: b.platform.Architecture,
		OS:           b.platform.OS,
		Config: runConfig{
			User:         fmt.Sprintf("%d:%d", uid, gid),
			ExposedPorts: map[string]struct{}{servingPort: {}},
			// What a Dockerfile FROM scratch gets; nothing here uses it.
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Entrypoint: []string{"/" + binaryPath},
			Labels: map[string]string{
				"org.opencontainers.image.version": o.version,
				"org.opencontainers.image.source":  o.source,
			},
		},
		History: []history{{Created: created, CreatedBy: "hack/image"}},
	}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{"sha256:" + hex.EncodeToString(diffID[:])}
	cfgBlob, err := jsonBlob(mediaTypeConfig, cfg)
	if err != nil {
		return blob{}, nil, 0, err
	}
	manifest, err = jsonBlob(mediaTypeManifest, struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
	}{2, mediaTypeManifest, cfgBlob.desc, []descriptor{layerBlob.desc}})
	if err != nil {
		return blob{}, nil, 0, err
	}
	p := b.platform
	manifest.desc.Platform = &p
	return manifest, []blob{cfgBlob, layerBlob}, int64(len(tarball)), nil
}

func build(o options) error {
	files, err := rootFiles()
	if err != nil {
		return err
	}
	var manifests []descriptor
	blobs := map[string]blob{}
	for _, b := range o.binaries {
		m, bs, raw, err := image(o, b, files)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", b.platform.OS, b.platform.Architecture, err)
		}
		manifests = append(manifests, m.desc)
		var compressed int64
		for _, x := range append(bs, m) {
			blobs[x.desc.Digest] = x
			compressed += x.desc.Size
		}
		fmt.Printf("%s/%s: %s, %.1f MB compressed (%.1f MB uncompressed)\n", b.platform.OS, b.platform.Architecture,
			m.desc.Digest, float64(compressed)/1e6, float64(raw)/1e6)
	}
	index, err := jsonBlob(mediaTypeIndex, struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}{2, mediaTypeIndex, manifests})
	if err != nil {
		return err
	}
	blobs[index.desc.Digest] = index
	// The layout's own index names the image index: `skopeo copy --all
	// oci-archive:FILE` and `podman load` find it without a reference.
	top := index.desc
	top.Annotations = map[string]string{"org.opencontainers.image.ref.name": o.ref}
	layoutIndex, err := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}{2, mediaTypeIndex, []descriptor{top}})
	if err != nil {
		return err
	}

	entries := []file{
		{path: "oci-layout", mode: 0o644, data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{path: "index.json", mode: 0o644, data: layoutIndex},
	}
	for _, b := range blobs {
		entries = append(entries, file{path: "blobs/sha256/" + strings.TrimPrefix(b.desc.Digest, "sha256:"), mode: 0o644, data: b.data})
	}
	archive, err := layer(entries, o.mtime)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	tmp := o.out + ".tmp"
	if err := os.WriteFile(tmp, archive, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, o.out); err != nil {
		return err
	}
	fmt.Printf("%s: %s %s (%d platforms)\n", o.out, o.ref, index.desc.Digest, len(manifests))
	return nil
}

// writeRootfs writes the image's files besides the binary under dir, for
// the Dockerfile to COPY.
func writeRootfs(dir string) error {
	files, err := rootFiles()
	if err != nil {
		return err
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, os.FileMode(f.mode)); err != nil {
			return err
		}
		if err := os.Chmod(p, os.FileMode(f.mode)); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	rootfs := fs.String("rootfs", "", "write the image's files besides the binary under this directory and exit (for the Dockerfile)")
	fs.StringVar(&o.out, "out", "", "the OCI archive to write")
	fs.StringVar(&o.ref, "ref", "", "the image reference recorded in the archive, e.g. ghcr.io/michael/k8s-cloud-node-manager:v0.1.0")
	fs.StringVar(&o.version, "version", "", "the server's version (label org.opencontainers.image.version)")
	fs.StringVar(&o.source, "source", "https://github.com/michael/k8s-cloud-node-manager", "label org.opencontainers.image.source")
	epoch := fs.Int64("source-date-epoch", 0, "timestamp of the files and the image, in seconds since 1970 (e.g. the commit's time)")
	fs.Func("binary", "OS/ARCH=PATH of a static server binary; repeat once per platform", func(v string) error {
		plat, path, ok := strings.Cut(v, "=")
		osName, arch, ok2 := strings.Cut(plat, "/")
		if !ok || !ok2 || osName == "" || arch == "" || path == "" {
			return fmt.Errorf("want OS/ARCH=PATH, got %q", v)
		}
		for _, b := range o.binaries {
			if b.platform == (platform{osName, arch}) {
				return fmt.Errorf("platform %s given twice", plat)
			}
		}
		o.binaries = append(o.binaries, binaryFlag{platform: platform{OS: osName, Architecture: arch}, path: path})
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *rootfs != "" {
		return writeRootfs(*rootfs)
	}
	if o.out == "" || o.ref == "" || len(o.binaries) == 0 {
		return errors.New("--out, --ref and at least one --binary are required")
	}
	if o.version == "" {
		return errors.New("--version is required")
	}
	if *epoch < 0 {
		return errors.New("--source-date-epoch must not be negative: " + strconv.FormatInt(*epoch, 10))
	}
	o.mtime = time.Unix(*epoch, 0).UTC()
	return build(o)
}
