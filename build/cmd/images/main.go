// Command images builds petset's OCI images (coredns, ordinal-controller,
// peer-finder) into OCI layouts under -out and prints their digests, or,
// with -push, pushes the layouts built before to -registry.
//
//	go -C build run ./cmd/images -root .. -out ../bin/images
//	go -C build run ./cmd/images -root .. -out ../bin/images -push -registry localhost:5000/petset
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"petset.dev/petset/build/image"
)

func main() {
	var (
		root      = flag.String("root", "..", "root of petset's main module (a git checkout)")
		out       = flag.String("out", "../bin/images", "directory of the OCI layouts, one per image")
		registry  = flag.String("registry", image.Registry, "registry and path the images are named under")
		version   = flag.String("version", "", "version and tag (default: git describe --tags --always --dirty, without a leading v)")
		platforms = flag.String("platforms", "linux/amd64,linux/arm64", "platforms to build")
		only      = flag.String("only", "", "comma-separated image names to build (default: all)")
		push      = flag.Bool("push", false, "push the layouts under -out to -registry instead of building")
		insecure  = flag.Bool("insecure", false, "with -push, allow plain HTTP to the registry")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if *push {
		var opts []name.Option
		if *insecure {
			opts = append(opts, name.Insecure)
		}
		err = image.PushAll(ctx, *out, *registry, os.Stdout, opts...)
	} else {
		err = build(ctx, *root, *out, *registry, *version, *platforms, *only)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func build(ctx context.Context, root, out, registry, version, platforms, only string) error {
	ps, err := image.ParsePlatforms(platforms)
	if err != nil {
		return err
	}
	bins := image.Binaries
	if only != "" {
		bins = nil
		for _, n := range strings.Split(only, ",") {
			b, err := image.Lookup(n)
			if err != nil {
				return err
			}
			bins = append(bins, b)
		}
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return err
	}
	s, err := image.StampFromGit(ctx, root)
	if err != nil {
		return err
	}
	if version != "" {
		s.Version = version
	}
	return image.BuildAll(ctx, root, out, registry, bins, ps, s, os.Stdout)
}
