package main

import (
	"slices"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
)

// headless must run just before kubernetes: it answers headless names and
// hands everything else on.
func TestDirectiveOrder(t *testing.T) {
	h := slices.Index(dnsserver.Directives, "headless")
	k := slices.Index(dnsserver.Directives, "kubernetes")
	if h < 0 || k != h+1 {
		t.Fatalf("headless at %d, kubernetes at %d: want headless just before kubernetes", h, k)
	}
	if slices.Index(dnsserver.Directives[h+1:], "headless") >= 0 {
		t.Fatal("headless is in the directives twice")
	}
	for _, before := range []string{"prometheus", "errors", "log", "cache", "rewrite", "transfer"} {
		if i := slices.Index(dnsserver.Directives, before); i < 0 || i > h {
			t.Errorf("%s at %d, want it before headless (%d)", before, i, h)
		}
	}
	if _, err := caddy.DirectiveAction("dns", "headless"); err != nil {
		t.Errorf("headless is not registered: %v", err)
	}
}

func TestVersionNamesPetset(t *testing.T) {
	if caddy.AppName != "petset-coredns" {
		t.Fatalf("AppName %q", caddy.AppName)
	}
}
