package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The tests build every image for this machine's platform, and
// peer-finder (the smallest) for amd64 and arm64 as well, so that the
// index of two platforms is checked without cross-compiling CoreDNS and
// the controller (minutes on a cold build cache; `make images` does that).
// Builds go through Go's build cache: a second run links only.

var (
	built    sync.Once
	builtOut string
	builtErr error
	stamp    Stamp
)

const testVersion = "0.0.0-test"

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func platformsOf(b Binary) []v1.Platform {
	ps := []v1.Platform{HostPlatform()}
	if b.Name == "peer-finder" {
		ps = Platforms
	}
	return ps
}

// buildAll builds the images once for the package's tests.
func buildAll(t *testing.T) string {
	t.Helper()
	built.Do(func() {
		root := repoRoot(t)
		ctx := context.Background()
		stamp, builtErr = StampFromGit(ctx, root)
		if builtErr != nil {
			return
		}
		stamp.Version = testVersion
		builtOut, builtErr = os.MkdirTemp("", "petset-images-test-")
		if builtErr != nil {
			return
		}
		for _, b := range Binaries {
			if builtErr = BuildAll(ctx, root, builtOut, Registry, []Binary{b}, platformsOf(b), stamp, io.Discard); builtErr != nil {
				return
			}
		}
	})
	if builtErr != nil {
		t.Fatal(builtErr)
	}
	return builtOut
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtOut != "" {
		os.RemoveAll(builtOut)
	}
	os.Exit(code)
}

// readBinary returns the one layer's files of img by name, after checking
// that entries are sorted, owned by root and dated at the commit.
func layerFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	mt, err := layers[0].MediaType()
	if err != nil || mt != types.OCILayer {
		t.Errorf("layer media type %q (%v), want %q", mt, err, types.OCILayer)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string][]byte{}
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(stamp.Created) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mtime %v uid %d gid %d, want %v 0 0", h.Name, h.ModTime, h.Uid, h.Gid, stamp.Created)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("tar entries not sorted: %v", names)
	}
	return files
}

// Each image read back from its layout is an OCI index of the expected
// platforms; each platform's image runs the binary as 65532 with the
// labels of the commit, and the binary in the layer runs and reports the
// stamped version.
func TestImages(t *testing.T) {
	out := buildAll(t)
	for _, b := range Binaries {
		t.Run(b.Name, func(t *testing.T) {
			idx, ref, err := ReadLayout(LayoutDir(out, b.Name))
			if err != nil {
				t.Fatal(err)
			}
			if want := "ghcr.io/petset/" + b.Name + ":" + testVersion; ref != want {
				t.Errorf("reference %q, want %q", ref, want)
			}
			mt, _ := idx.MediaType()
			if mt != types.OCIImageIndex {
				t.Errorf("index media type %q", mt)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range im.Manifests {
				if d.Platform == nil {
					t.Fatalf("manifest %s without a platform", d.Digest)
				}
				got = append(got, d.Platform.String())
				img, err := idx.Image(d.Digest)
				if err != nil {
					t.Fatal(err)
				}
				checkImage(t, b, *d.Platform, img)
			}
			var want []string
			for _, p := range platformsOf(b) {
				want = append(want, p.String())
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("platforms %v, want %v", got, want)
			}
		})
	}
}

func checkImage(t *testing.T, b Binary, p v1.Platform, img v1.Image) {
	t.Helper()
	mt, _ := img.MediaType()
	if mt != types.OCIManifestSchema1 {
		t.Errorf("%s: manifest media type %q", p, mt)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != p.OS || cf.Architecture != p.Architecture {
		t.Errorf("%s: config platform %s/%s", p, cf.OS, cf.Architecture)
	}
	entry := "/usr/local/bin/" + b.Name
	if cf.Config.User != "65532:65532" || !slices.Equal(cf.Config.Entrypoint, []string{entry}) || len(cf.Config.Cmd) != 0 {
		t.Errorf("%s: user %q entrypoint %q cmd %q", p, cf.Config.User, cf.Config.Entrypoint, cf.Config.Cmd)
	}
	if !cf.Created.Time.Equal(stamp.Created) {
		t.Errorf("%s: created %v, want the commit time %v", p, cf.Created, stamp.Created)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.source":   "https://github.com/petset/petset",
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.revision": stamp.Revision,
		"org.opencontainers.image.created":  stamp.Created.Format(time.RFC3339),
	} {
		if got := cf.Config.Labels[k]; got != want || want == "" {
			t.Errorf("%s: label %s = %q, want %q", p, k, got, want)
		}
	}
	files := layerFiles(t, img)
	bin, ok := files[strings.TrimPrefix(entry, "/")]
	if !ok || len(files) != 1 {
		t.Fatalf("%s: layer files %v, want only %s", p, slices.Collect(mapKeys(files)), entry)
	}
	if p.String() != HostPlatform().String() || runtime.GOOS != "linux" {
		return
	}
	// Run the binary taken out of the layer.
	exe := filepath.Join(t.TempDir(), b.Name)
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	outb, err := exec.Command(exe, "-version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -version: %v: %s", b.Name, err, outb)
	}
	if !strings.Contains(string(outb), testVersion) {
		t.Errorf("%s -version printed %q, want the version %q in it", b.Name, outb, testVersion)
	}
	// Reproducible binaries: no build ID, no path of this checkout.
	bi, err := exec.Command("go", "version", "-m", exe).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v: %s", err, bi)
	}
	for _, want := range []string{"-trimpath=true", "CGO_ENABLED=0"} {
		if !strings.Contains(string(bi), want) {
			t.Errorf("%s: build info lacks %q:\n%s", b.Name, want, bi)
		}
	}
	if bytes.Contains(bin, []byte(repoRoot(t))) {
		t.Errorf("%s: binary holds the checkout's path %s", b.Name, repoRoot(t))
	}
	id, err := exec.Command("go", "tool", "buildid", exe).CombinedOutput()
	if err != nil || strings.TrimSpace(string(id)) != "" {
		t.Errorf("%s: build ID %q (%v), want none", b.Name, id, err)
	}
}

func mapKeys(m map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Two builds of one commit give the same digests, the layout files
// byte for byte, although the wall clock moved between them.
func TestReproducible(t *testing.T) {
	first := buildAll(t)
	second := t.TempDir()
	b, _ := Lookup("peer-finder")
	time.Sleep(1100 * time.Millisecond) // the wall clock must move: nothing may depend on it
	var out bytes.Buffer
	if err := BuildAll(context.Background(), repoRoot(t), second, Registry, []Binary{b}, Platforms, stamp, &out); err != nil {
		t.Fatal(err)
	}
	i1, _, err := ReadLayout(LayoutDir(first, b.Name))
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := i1.Digest()
	if !strings.Contains(out.String(), d1.String()) {
		t.Errorf("second build printed %q, first digest %s", out.String(), d1)
	}
	for _, f := range []string{"index.json", "oci-layout"} {
		a, _ := os.ReadFile(filepath.Join(LayoutDir(first, b.Name), f))
		c, _ := os.ReadFile(filepath.Join(LayoutDir(second, b.Name), f))
		if !bytes.Equal(a, c) || len(a) == 0 {
			t.Errorf("%s differs:\n%s\n%s", f, a, c)
		}
	}
	// A different commit time gives a different digest: the time is in.
	s2 := stamp
	s2.Created = s2.Created.Add(time.Second)
	img1, err := Image(b, HostPlatform(), []byte("x"), stamp)
	if err != nil {
		t.Fatal(err)
	}
	img2, err := Image(b, HostPlatform(), []byte("x"), s2)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := img1.Digest()
	h2, _ := img2.Digest()
	if h1 == h2 {
		t.Errorf("images of two commit times share digest %s", h1)
	}
}

// PushAll sends every layout to a registry (go-containerregistry's
// in-memory one, on 127.0.0.1), where the index has the same digest and
// each platform's image can be pulled.
func TestPush(t *testing.T) {
	out := buildAll(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	if !strings.HasPrefix(host, "127.0.0.1:") {
		t.Fatalf("registry on %s, want 127.0.0.1", host)
	}
	var printed bytes.Buffer
	if err := PushAll(context.Background(), out, host+"/petset", &printed, name.Insecure); err != nil {
		t.Fatal(err)
	}
	for _, b := range Binaries {
		local, _, err := ReadLayout(LayoutDir(out, b.Name))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := local.Digest()
		ref, err := name.ParseReference(Ref(host+"/petset", b.Name, testVersion), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Index(ref)
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		got, _ := idx.Digest()
		if got != want {
			t.Errorf("%s: pushed digest %s, local %s", b.Name, got, want)
		}
		if !strings.Contains(printed.String(), ref.String()+" "+want.String()) {
			t.Errorf("push printed %q, want %s %s", printed.String(), ref, want)
		}
		im, _ := idx.IndexManifest()
		for _, d := range im.Manifests {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			layers, _ := img.Layers()
			for _, l := range layers {
				rc, err := l.Compressed()
				if err != nil {
					t.Fatalf("%s %s: layer: %v", b.Name, d.Platform, err)
				}
				n, _ := io.Copy(io.Discard, rc)
				rc.Close()
				if n == 0 {
					t.Errorf("%s %s: empty layer", b.Name, d.Platform)
				}
			}
		}
	}
	// Nothing to push is an error, not a silent success.
	if err := PushAll(context.Background(), t.TempDir(), host+"/petset", io.Discard); err == nil {
		t.Error("pushing an empty directory succeeded")
	}
}

func TestParsePlatforms(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"linux/amd64,linux/arm64", []string{"linux/amd64", "linux/arm64"}, false},
		{" linux/arm64 ", []string{"linux/arm64"}, false},
		{"", nil, true},
		{"windows/amd64", nil, true},
		{"linux/amd64,,", []string{"linux/amd64"}, false},
		{"linux", nil, true},
		{"linux/ :", nil, true},
		{"linux/amd64:10", nil, true},
		{"linux/arm/v7", []string{"linux/arm/v7"}, false},
	}
	for _, tc := range tests {
		ps, err := ParsePlatforms(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestImageNeedsStamp(t *testing.T) {
	b, _ := Lookup("coredns")
	if _, err := Image(b, HostPlatform(), []byte("x"), Stamp{Version: "1"}); err == nil {
		t.Error("an image without revision and time was built")
	}
	if _, err := Lookup("nope"); err == nil {
		t.Error("Lookup of an unknown name succeeded")
	}
}

// ParsePlatforms never panics; what it accepts is a non-empty list of
// linux platforms that print back as they parse.
func FuzzParsePlatforms(f *testing.F) {
	for _, s := range []string{"linux/amd64,linux/arm64", " linux/arm64 ", "", "windows/amd64", "linux/arm/v7", "linux/amd64,,", "/", "linux//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePlatforms(s)
		if err != nil {
			return
		}
		if len(ps) == 0 {
			t.Fatalf("%q: no platforms and no error", s)
		}
		for _, p := range ps {
			if p.OS != "linux" || p.Architecture == "" {
				t.Fatalf("%q: accepted %s", s, p)
			}
			again, err := v1.ParsePlatform(p.String())
			if err != nil || again.String() != p.String() {
				t.Fatalf("%q: %s does not parse back (%v)", s, p, err)
			}
		}
	})
}
