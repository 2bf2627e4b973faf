package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RefName is the OCI layout annotation that names an index's tag.
const RefName = "org.opencontainers.image.ref.name"

// Ref is the reference of image name at version under registry, such as
// ghcr.io/petset/coredns:0.1.0.
func Ref(registry, name, version string) string {
	return strings.TrimSuffix(registry, "/") + "/" + name + ":" + version
}

// WriteLayout replaces dir with an OCI image layout holding idx, its
// reference recorded in the layout's index.json.
func WriteLayout(dir string, idx v1.ImageIndex, ref string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{RefName: ref})); err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	return nil
}

// ReadLayout returns the index in the OCI layout dir written by
// WriteLayout, and its reference.
func ReadLayout(dir string) (v1.ImageIndex, string, error) {
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, "", fmt.Errorf("layout %s: %w", dir, err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		return nil, "", fmt.Errorf("layout %s: %w", dir, err)
	}
	if len(m.Manifests) != 1 {
		return nil, "", fmt.Errorf("layout %s: %d entries, want 1", dir, len(m.Manifests))
	}
	d := m.Manifests[0]
	idx, err := top.ImageIndex(d.Digest)
	if err != nil {
		return nil, "", fmt.Errorf("layout %s: %w", dir, err)
	}
	return idx, d.Annotations[RefName], nil
}

// Push writes idx, its images and their blobs to ref, with the
// credentials of the default keychain (docker login's config).
func Push(ctx context.Context, idx v1.ImageIndex, ref string, opts ...name.Option) error {
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// LayoutDir is where the layout of the image called name goes under out.
func LayoutDir(out, name string) string { return filepath.Join(out, name) }

// BuildAll builds the images of bins, writes each to its layout under out
// and prints one line per image: reference and index digest.
func BuildAll(ctx context.Context, root, out, registry string, bins []Binary, platforms []v1.Platform, s Stamp, w io.Writer) error {
	for _, b := range bins {
		idx, err := Build(ctx, root, b, platforms, s)
		if err != nil {
			return err
		}
		ref := Ref(registry, b.Name, s.Version)
		if err := WriteLayout(LayoutDir(out, b.Name), idx, ref); err != nil {
			return err
		}
		d, err := idx.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s %s\n", ref, d)
	}
	return nil
}

// PushAll pushes every layout under out to registry, under the name and
// tag recorded in the layout (the registry part replaced).
func PushAll(ctx context.Context, out, registry string, w io.Writer, opts ...name.Option) error {
	entries, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("no images to push (run make images): %w", err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		idx, ref, err := ReadLayout(filepath.Join(out, e.Name()))
		if err != nil {
			return err
		}
		t, err := name.NewTag(ref, name.StrictValidation)
		if err != nil {
			return fmt.Errorf("layout %s: reference %q: %w", e.Name(), ref, err)
		}
		to := Ref(registry, e.Name(), t.TagStr())
		if err := Push(ctx, idx, to, opts...); err != nil {
			return err
		}
		d, err := idx.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s %s\n", to, d)
		n++
	}
	if n == 0 {
		return fmt.Errorf("no images under %s (run make images)", out)
	}
	return nil
}
