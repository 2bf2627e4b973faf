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

	// The signal is the context's cause: SIGINT before the first run of a
	// run-once peer-finder exits 130, SIGTERM 143.
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		if s, ok := (<-sigs).(syscall.Signal); ok {
			cancel(&discovery.SignalError{Signal: s})
		}
	}()
	err = discovery.Run(ctx, cfg, discovery.Options{Log: klog.Background()})
	signal.Stop(sigs)
	cancel(nil)
	klog.Flush()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer-finder:", err)
	}
	os.Exit(discovery.ExitCode(err))
}
