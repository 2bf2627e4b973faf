// Command testbed starts and stops petset's local control plane for
// interactive use: `testbed up DIR` leaves it running and writes
// DIR/kubeconfig; `testbed down DIR` stops it. `testbed reap DIR` is the
// reaper process `up` leaves running (cluster.Reap).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"k8s.io/client-go/tools/clientcmd"

	"petset.dev/petset/test/cluster"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "up" && os.Args[1] != "down" && os.Args[1] != "reap") {
		fmt.Fprintln(os.Stderr, "usage: testbed up|down|reap DIR")
		os.Exit(2)
	}
	dir := os.Args[2]
	if os.Args[1] == "reap" {
		if err := reap(dir); err != nil {
			fmt.Fprintln(os.Stderr, "testbed reap:", err)
			os.Exit(1)
		}
		return
	}
	if os.Args[1] == "down" {
		if err := cluster.StopDir(dir); err != nil {
			fmt.Fprintln(os.Stderr, "testbed down:", err)
			os.Exit(1)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "testbed up:", err)
		os.Exit(1)
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "testbed: "+format+"\n", args...) }
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbed up:", err)
		os.Exit(1)
	}
	c, err := cluster.Start(context.Background(), cluster.Options{Dir: dir, Detach: true, Log: logf, Reaper: []string{self, "reap", dir}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbed up:", err)
		os.Exit(1)
	}
	fmt.Println(c.Kubeconfig)
}

// reap runs the cluster's reaper (cluster.Reap) until SIGTERM or SIGINT.
func reap(dir string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig"))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	return cluster.Reap(ctx, cfg, cluster.NodeName, logf)
}
