package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/x509"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The OCI image-spec's documents, as far as the tests read them.
type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *ociPlatform      `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type ociPlatform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
}

type ociIndex struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Manifests     []ociDescriptor `json:"manifests"`
}

type ociManifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        ociDescriptor   `json:"config"`
	Layers        []ociDescriptor `json:"layers"`
}

type ociConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Config       struct {
		User         string              `json:"User"`
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		Env          []string            `json:"Env"`
		WorkingDir   string              `json:"WorkingDir"`
		Labels       map[string]string   `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// fsEntry is one entry of an image's file system.
type fsEntry struct {
	Type     byte // tar.TypeReg, tar.TypeDir, …
	Mode     int64
	UID, GID int
	Size     int64
	SHA256   string
	data     []byte
}

func (e fsEntry) String() string {
	return fmt.Sprintf("type %c mode %04o uid %d gid %d size %d sha256 %s", e.Type, e.Mode, e.UID, e.GID, e.Size, e.SHA256)
}

// platformImage is one image of the archive's index.
type platformImage struct {
	platform   string
	manifest   ociManifest
	config     ociConfig
	files      map[string]fsEntry
	compressed int64 // manifest, config and layers as a registry stores them
	raw        int64 // uncompressed layers
}

// archive is make image's output, read and checked for integrity: every
// blob has the digest and size its descriptor says.
type archive struct {
	ref string
	// indexDigest is the image index's digest, what a registry keeps
	// under the tag.
	indexDigest string
	index       ociIndex
	images      []platformImage
}

func readArchive(t *testing.T, path string) *archive {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries[strings.TrimPrefix(h.Name, "./")] = data
	}
	if got := string(entries["oci-layout"]); !strings.Contains(got, `"imageLayoutVersion":"1.0.0"`) {
		t.Fatalf("oci-layout is %q", got)
	}
	blob := func(d ociDescriptor) []byte {
		t.Helper()
		hexDigest, ok := strings.CutPrefix(d.Digest, "sha256:")
		if !ok {
			t.Fatalf("digest %q is not sha256", d.Digest)
		}
		data, ok := entries["blobs/sha256/"+hexDigest]
		if !ok {
			t.Fatalf("blob %s (%s) missing from the archive", d.Digest, d.MediaType)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != hexDigest || int64(len(data)) != d.Size {
			t.Fatalf("blob %s: content has sha256:%x and %d bytes, descriptor says %d", d.Digest, sum, len(data), d.Size)
		}
		return data
	}
	decode := func(data []byte, v any) {
		t.Helper()
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("%v in %s", err, data)
		}
	}

	var layout ociIndex
	decode(entries["index.json"], &layout)
	if len(layout.Manifests) != 1 || layout.Manifests[0].MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("index.json should name one image index, has %+v", layout.Manifests)
	}
	a := &archive{ref: layout.Manifests[0].Annotations["org.opencontainers.image.ref.name"], indexDigest: layout.Manifests[0].Digest}
	decode(blob(layout.Manifests[0]), &a.index)
	for _, d := range a.index.Manifests {
		if d.MediaType != "application/vnd.oci.image.manifest.v1+json" || d.Platform == nil {
			t.Fatalf("index entry %+v is not a manifest with a platform", d)
		}
		img := platformImage{platform: d.Platform.OS + "/" + d.Platform.Architecture, files: map[string]fsEntry{}, compressed: d.Size}
		decode(blob(d), &img.manifest)
		decode(blob(img.manifest.Config), &img.config)
		img.compressed += img.manifest.Config.Size
		if len(img.manifest.Layers) != len(img.config.RootFS.DiffIDs) {
			t.Fatalf("%s: %d layers, %d diff_ids", img.platform, len(img.manifest.Layers), len(img.config.RootFS.DiffIDs))
		}
		for i, l := range img.manifest.Layers {
			if l.MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
				t.Fatalf("%s: layer media type %s", img.platform, l.MediaType)
			}
			img.compressed += l.Size
			zr, err := gzip.NewReader(bytes.NewReader(blob(l)))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			img.raw += int64(len(raw))
			if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != img.config.RootFS.DiffIDs[i] {
				t.Fatalf("%s: layer %d's diff_id %s does not match its content", img.platform, i, img.config.RootFS.DiffIDs[i])
			}
			readLayer(t, raw, img.files)
		}
		a.images = append(a.images, img)
	}
	return a
}

// readLayer adds a layer tar's entries to files (no whiteouts: the
// images here have one layer, or only add files).
func readLayer(t *testing.T, raw []byte, files map[string]fsEntry) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if strings.Contains(name, ".wh.") {
			t.Fatalf("whiteout %s in a layer", name)
		}
		e := fsEntry{Type: h.Typeflag, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid}
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			e.Size, e.SHA256, e.data = int64(len(data)), hex.EncodeToString(sum[:]), data
		}
		files[name] = e
	}
}

func (a *archive) image(t *testing.T, platform string) platformImage {
	t.Helper()
	for _, img := range a.images {
		if img.platform == platform {
			return img
		}
	}
	t.Fatalf("no %s image in the archive", platform)
	return platformImage{}
}

func TestArchive(t *testing.T) {
	a := readArchive(t, env.archive)
	if a.ref != env.ref {
		t.Fatalf("the archive names its image %q, want %q", a.ref, env.ref)
	}
	var platforms []string
	for _, img := range a.images {
		platforms = append(platforms, img.platform)
	}
	sort.Strings(platforms)
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
		t.Fatalf("platforms %v, want %v", platforms, want)
	}
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

	for _, img := range a.images {
		t.Run(img.platform, func(t *testing.T) {
			t.Logf("figures: %s image %.1f MB compressed (goal < 40 MB), %.1f MB uncompressed",
				img.platform, float64(img.compressed)/1e6, float64(img.raw)/1e6)
			c := img.config
			if c.OS+"/"+c.Architecture != img.platform {
				t.Fatalf("config says %s/%s for the %s entry", c.OS, c.Architecture, img.platform)
			}
			if c.Config.User != "65532:65532" || !slices.Equal(c.Config.Entrypoint, []string{"/k8s-cloud-node-manager"}) || len(c.Config.Cmd) != 0 {
				t.Fatalf("user %q entrypoint %q cmd %q", c.Config.User, c.Config.Entrypoint, c.Config.Cmd)
			}
			if v := c.Config.Labels["org.opencontainers.image.version"]; v != env.version {
				t.Fatalf("version label %q, want %q", v, env.version)
			}

			var regular []string
			for name, e := range img.files {
				if e.Type == tar.TypeReg {
					regular = append(regular, name)
				}
				if e.UID != 0 || e.GID != 0 {
					t.Errorf("%s is owned by %d:%d: the server's user must not own (and so be able to change) any file", name, e.UID, e.GID)
				}
				if e.Type != tar.TypeReg && e.Type != tar.TypeDir {
					t.Errorf("%s: unexpected entry %s", name, e)
				}
			}
			sort.Strings(regular)
			want := []string{"etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "k8s-cloud-node-manager"}
			if !slices.Equal(regular, want) {
				t.Fatalf("files %v, want %v", regular, want)
			}

			bin := img.files["k8s-cloud-node-manager"]
			if bin.Mode != 0o755 {
				t.Errorf("binary mode %04o", bin.Mode)
			}
			ef, err := elf.NewFile(bytes.NewReader(bin.data))
			if err != nil {
				t.Fatalf("the binary is not ELF: %v", err)
			}
			if ef.Machine != machine[c.Architecture] {
				t.Fatalf("%s image holds a %s binary", img.platform, ef.Machine)
			}
			// From scratch there is no libc and no loader: the binary
			// must be static.
			for _, p := range ef.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Fatalf("the binary is dynamically linked (%s)", p.Type)
				}
			}

			// The user the config names exists, so tools that resolve it
			// (and the kubelet's runAsNonRoot check of a numeric USER) agree.
			if !strings.Contains(string(img.files["etc/passwd"].data), "nonroot:x:65532:65532:") ||
				!strings.Contains(string(img.files["etc/group"].data), "nonroot:x:65532:") {
				t.Fatalf("passwd/group lack the 65532 user:\n%s%s", img.files["etc/passwd"].data, img.files["etc/group"].data)
			}

			// Go's crypto/x509 reads this file first on Linux: the cloud
			// APIs' certificates verify against it.
			n := caBundleRoots(t, img.files["etc/ssl/certs/ca-certificates.crt"].data)
			if n < 100 {
				t.Fatalf("the CA bundle has %d roots", n)
			}
			t.Logf("CA bundle: %d roots", n)
		})
	}
}

// caBundleRoots parses a PEM bundle and returns how many CA certificates
// it holds; anything else in it fails the test.
func caBundleRoots(t *testing.T, data []byte) int {
	t.Helper()
	n := 0
	for rest := data; len(bytes.TrimSpace(rest)) > 0; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil || block.Type != "CERTIFICATE" {
			t.Fatalf("the CA bundle holds something other than certificates after %d roots", n)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("root %d: %v", n, err)
		}
		if !cert.IsCA {
			t.Fatalf("%s in the CA bundle is not a CA", cert.Subject)
		}
		n++
	}
	return n
}
