// Package image builds petset's OCI images without a container engine: each
// one a single layer holding one static Go binary on an empty base, run as
// user 65532, for linux/amd64 and linux/arm64, gathered in an image index.
// Two builds of one commit give the same digests: binaries are built with
// -trimpath and an empty build ID, tar entries are sorted and dated at the
// commit time, and the image config carries the commit time as well.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Binary is one of petset's commands and the image that ships it.
type Binary struct {
	Name       string // image name under the registry, and the file name
	Package    string // Go package, relative to the main module's root, or a path it requires
	VersionVar string // variable set to the version with -ldflags -X; none if empty
	// BindsLowPorts gives the binary the file capability
	// cap_net_bind_service=+ep, so it binds ports below 1024 as a
	// non-root user without other privileges.
	BindsLowPorts bool
}

// Binaries are the images `make images` builds.
var Binaries = []Binary{
	{Name: "coredns", Package: "./cmd/coredns", VersionVar: "petset.dev/petset/plugin/headless.Version"},
	{Name: "ordinal-controller", Package: "./cmd/ordinal-controller", VersionVar: "petset.dev/petset/controller.Version"},
	{Name: "peer-finder", Package: "./cmd/peer-finder", VersionVar: "petset.dev/petset/discovery.Version"},
}

// Lookup returns the Binary called name.
func Lookup(name string) (Binary, error) {
	for _, b := range Binaries {
		if b.Name == name {
			return b, nil
		}
	}
	return Binary{}, fmt.Errorf("no image called %q", name)
}

// Platforms are the platforms images are built for by default.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

const (
	// Registry is where released images live.
	Registry = "ghcr.io/petset"
	// User is the numeric user and group images run as (nonroot in
	// distroless images); numeric, so no /etc/passwd is needed.
	User = "65532:65532"
	// Dir is where the binary is put in the image.
	Dir = "/usr/local/bin"
	// Source is the repository named in the images' source label.
	Source = "https://github.com/petset/petset"
	// Licenses is the SPDX expression of the images' license label.
	Licenses = "Apache-2.0"
)

// Stamp is what identifies a build: the version, the commit and its time.
type Stamp struct {
	Version  string    // `git describe --tags --always --dirty` without a leading v
	Revision string    // full commit hash
	Created  time.Time // commit time: every date in the image
}

// StampFromGit reads the stamp of the commit checked out in root.
func StampFromGit(ctx context.Context, root string) (Stamp, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	desc, err := git("describe", "--tags", "--always", "--dirty")
	if err != nil {
		return Stamp{}, err
	}
	rev, err := git("rev-parse", "HEAD")
	if err != nil {
		return Stamp{}, err
	}
	ct, err := git("log", "-1", "--format=%ct")
	if err != nil {
		return Stamp{}, err
	}
	var sec int64
	if _, err := fmt.Sscan(ct, &sec); err != nil {
		return Stamp{}, fmt.Errorf("commit time %q: %w", ct, err)
	}
	return Stamp{Version: strings.TrimPrefix(desc, "v"), Revision: rev, Created: time.Unix(sec, 0).UTC()}, nil
}

// Labels are the OCI annotations put on every image's config.
func (s Stamp) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":   Source,
		"org.opencontainers.image.version":  s.Version,
		"org.opencontainers.image.revision": s.Revision,
		"org.opencontainers.image.licenses": Licenses,
		"org.opencontainers.image.created":  s.Created.Format(time.RFC3339),
	}
}

func (s Stamp) validate() error {
	if s.Version == "" || s.Revision == "" || s.Created.IsZero() {
		return errors.New("the stamp needs a version, a revision and a time")
	}
	return nil
}

// GoBuild builds b for platform p from the main module in root into a
// static, reproducible binary at out.
func GoBuild(ctx context.Context, root string, b Binary, p v1.Platform, s Stamp, out string) error {
	ldflags := "-s -w -buildid="
	if b.VersionVar != "" {
		ldflags += fmt.Sprintf(" -X %s=%s", b.VersionVar, s.Version)
	}
	if b.Name == "coredns" {
		ldflags += " -X github.com/coredns/coredns/coremain.GitCommit=" + s.Revision
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, b.Package)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture, "GOFLAGS=")
	if p.Variant != "" && p.Architecture == "arm" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s: %w: %s", b.Package, p, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Layer is a tar of the binary at Dir/name, with its parent directories,
// owned by root, dated at the stamp's time, entries sorted; with
// bindsLowPorts the binary carries the file capability
// cap_net_bind_service=+ep.
func Layer(name string, binary []byte, created time.Time, bindsLowPorts bool) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	file := strings.TrimPrefix(path.Join(Dir, name), "/")
	var dirs []string
	for d := path.Dir(file); d != "."; d = path.Dir(d) {
		dirs = append(dirs, d+"/")
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: created, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	h := &tar.Header{Typeflag: tar.TypeReg, Name: file, Mode: 0o755, Size: int64(len(binary)), ModTime: created, Format: tar.FormatPAX}
	if bindsLowPorts {
		h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": string(netBindServiceCap)}
	}
	if err := tw.WriteHeader(h); err != nil {
		return nil, err
	}
	if _, err := tw.Write(binary); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// netBindServiceCap is the security.capability extended attribute of
// cap_net_bind_service=+ep: struct vfs_cap_data, revision 2, little
// endian: magic and the effective flag, then the permitted and inheritable
// sets of capabilities 0-31 and 32-63. CAP_NET_BIND_SERVICE is 10.
var netBindServiceCap = []byte{
	0x01, 0x00, 0x00, 0x02, // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
	0x00, 0x04, 0x00, 0x00, // permitted: 1 << 10
	0x00, 0x00, 0x00, 0x00, // inheritable
	0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00,
}

// Image is the image of one binary for one platform.
func Image(b Binary, p v1.Platform, binary []byte, s Stamp) (v1.Image, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	layer, err := Layer(b.Name, binary, s.Created, b.BindsLowPorts)
	if err != nil {
		return nil, fmt.Errorf("layer of %s: %w", b.Name, err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: s.Created},
			CreatedBy: "go build " + b.Package,
			Comment:   "petset " + s.Version,
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: s.Created}
	cf.Author = ""
	cf.Config = v1.Config{
		User:       User,
		Entrypoint: []string{path.Join(Dir, b.Name)},
		Env:        []string{"PATH=" + Dir},
		WorkingDir: "/",
		Labels:     s.Labels(),
	}
	return mutate.ConfigFile(img, cf)
}

// Index gathers one image per platform into an OCI image index.
func Index(images map[string]v1.Image, s Stamp) (v1.ImageIndex, error) {
	var keys []string
	for k := range images {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, k := range keys {
		img := images[k]
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		p := cf.Platform()
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: p},
		})
	}
	return mutate.Annotations(idx, s.Labels()).(v1.ImageIndex), nil
}

// Build builds the binary b for every platform in a scratch directory
// and returns the index of its images.
func Build(ctx context.Context, root string, b Binary, platforms []v1.Platform, s Stamp) (v1.ImageIndex, error) {
	if len(platforms) == 0 {
		return nil, errors.New("no platforms")
	}
	tmp, err := os.MkdirTemp("", "petset-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	images := map[string]v1.Image{}
	for _, p := range platforms {
		out := filepath.Join(tmp, b.Name+"-"+p.OS+"-"+p.Architecture+p.Variant)
		if err := GoBuild(ctx, root, b, p, s, out); err != nil {
			return nil, err
		}
		bin, err := os.ReadFile(out)
		if err != nil {
			return nil, err
		}
		img, err := Image(b, p, bin, s)
		if err != nil {
			return nil, err
		}
		images[p.String()] = img
	}
	return Index(images, s)
}

var goToken = regexp.MustCompile(`^[a-z0-9]+$`)

// ParsePlatforms reads a comma-separated list such as
// "linux/amd64,linux/arm64".
func ParsePlatforms(list string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := v1.ParsePlatform(f)
		if err != nil {
			return nil, fmt.Errorf("platform %q: %w", f, err)
		}
		if p.OS != "linux" {
			return nil, fmt.Errorf("platform %q: only linux images are built", f)
		}
		if !goToken.MatchString(p.Architecture) || p.Variant != "" && !goToken.MatchString(p.Variant) || p.OSVersion != "" {
			return nil, fmt.Errorf("platform %q: want linux/<arch>[/<variant>], such as linux/arm64", f)
		}
		out = append(out, *p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no platform in %q", list)
	}
	return out, nil
}

// HostPlatform is the linux platform of this machine's architecture.
func HostPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}
