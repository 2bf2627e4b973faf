// Command testimages builds the images the testbed's real node runs
// besides petset's own, for this machine's platform, and pushes them to
// -registry (plain HTTP: the testbed's registry on 127.0.0.1):
//
//   - pause: the sandbox image (test/images/pause);
//   - resolver: the client pod that resolves names (test/images/resolver);
//   - coredns/coredns:v1.15.0: stock CoreDNS, built from its module as go.mod pins it,
//     with the file capability to bind port 53 as its own image has;
//   - etcd:v3.6.5: the etcd binary of the testbed (-etcd).
//
// It prints one line per image: reference and digest.
//
//	go -C build run ./cmd/testimages -root .. -registry 127.0.0.1:5000 -etcd .cache/testbed/KEY/etcd
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"petset.dev/petset/build/image"
)

// TestImages are the images built from Go packages, with their tags.
var TestImages = []struct {
	image.Binary
	Repo, Tag string // -tag, or the Stamp's version, when Tag is empty
}{
	{Binary: image.Binary{Name: "pause", Package: "./test/images/pause"}, Repo: "pause"},
	{Binary: image.Binary{Name: "resolver", Package: "./test/images/resolver"}, Repo: "resolver"},
	// As CoreDNS's own image: a non-root user, and the file capability
	// to bind port 53 (kubeadm's Deployment adds NET_BIND_SERVICE).
	{Binary: image.Binary{Name: "coredns", Package: "github.com/coredns/coredns", BindsLowPorts: true}, Repo: "coredns/coredns", Tag: "v1.15.0"},
}

func main() {
	root := flag.String("root", "..", "root of petset's main module (a git checkout)")
	registry := flag.String("registry", "", "registry to push to, such as 127.0.0.1:5000 (plain HTTP)")
	etcd := flag.String("etcd", "", "the etcd v3.6.5 binary to make the etcd image of")
	tag := flag.String("tag", "", "tag of the images built from test programs (default: the version git describe gives)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *root, *registry, *etcd, *tag); err != nil {
		fmt.Fprintln(os.Stderr, "testimages:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, root, registry, etcd, tag string) error {
	if registry == "" || etcd == "" {
		return fmt.Errorf("-registry and -etcd are required")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	s, err := image.StampFromGit(ctx, root)
	if err != nil {
		return err
	}
	p := image.HostPlatform()
	for _, t := range TestImages {
		idx, err := image.Build(ctx, root, t.Binary, []v1.Platform{p}, s)
		if err != nil {
			return err
		}
		ref := image.Ref(registry, t.Repo, cmp.Or(t.Tag, tag, s.Version))
		if err := push(ctx, idx, ref); err != nil {
			return err
		}
	}
	bin, err := os.ReadFile(etcd)
	if err != nil {
		return err
	}
	img, err := image.Image(image.Binary{Name: "etcd", Package: "go.etcd.io/etcd/server/v3"}, p, bin, s)
	if err != nil {
		return err
	}
	idx, err := image.Index(map[string]v1.Image{p.String(): img}, s)
	if err != nil {
		return err
	}
	return push(ctx, idx, image.Ref(registry, "etcd", "v3.6.5"))
}

func push(ctx context.Context, idx v1.ImageIndex, ref string) error {
	if err := image.Push(ctx, idx, ref, name.Insecure); err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", ref, d)
	return nil
}
