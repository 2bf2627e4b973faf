// Command coredns is CoreDNS with every stock plugin plus petset's
// headless plugin, which runs just before kubernetes.
package main

import (
	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/core/plugin" // CoreDNS's own plugins
	"github.com/coredns/coredns/coremain"

	"petset.dev/petset/plugin/headless"
)

func init() {
	dnsserver.Directives = headless.InsertDirective(dnsserver.Directives)
	caddy.AppName = "petset-coredns"
	caddy.AppVersion = headless.Version + " (CoreDNS " + coremain.CoreVersion + ")"
}

func main() { coremain.Run() }
