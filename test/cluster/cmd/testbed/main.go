// Command testbed starts and stops petset's local control plane for
// interactive use: `testbed up DIR` leaves it running and writes
// DIR/kubeconfig; `testbed down DIR` stops it.
package main

import (
	"context"
	"fmt"
	"os"

	"petset.dev/petset/test/cluster"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: testbed up|down DIR")
		os.Exit(2)
	}
	dir := os.Args[2]
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
	c, err := cluster.Start(context.Background(), cluster.Options{Dir: dir, Detach: true, Log: logf})
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbed up:", err)
		os.Exit(1)
	}
	fmt.Println(c.Kubeconfig)
}
