// Command peer-finder finds the peers of a pod through the SRV records of
// its governing headless service and hands them to a hook, a rendered
// configuration file or standard output: an init container or a native
// sidecar for stateful sets. See discovery/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"k8s.io/klog/v2"

	"petset.dev/petset/discovery"
)

func main() {
	cfg, err := discovery.ParseFlags(os.Args[1:], discovery.Environment{})
	switch {
	case errors.Is(err, flag.ErrHelp), errors.Is(err, discovery.ErrVersion):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "peer-finder:", err)
		os.Exit(discovery.ExitCode(err))
	}
	kfs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(kfs)
	kfs.Set("v", strconv.Itoa(cfg.Verbosity))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err = discovery.Run(ctx, cfg, discovery.Options{Log: klog.Background()})
	stop()
	klog.Flush()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer-finder:", err)
	}
	os.Exit(discovery.ExitCode(err))
}
