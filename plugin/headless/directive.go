package headless

import "slices"

// Version is petset's version; release builds set it with
// -ldflags "-X petset.dev/petset/plugin/headless.Version=...".
var Version = "0.1.0-dev"

// InsertDirective returns CoreDNS's directive list with "headless" just
// before "kubernetes", so that headless names are answered first and the
// rest falls through to the kubernetes plugin. Without "kubernetes" in the
// list, headless goes last. A list that has headless already is returned
// as is.
func InsertDirective(directives []string) []string {
	if slices.Contains(directives, pluginName) {
		return directives
	}
	i := slices.Index(directives, "kubernetes")
	if i < 0 {
		i = len(directives)
	}
	return slices.Insert(slices.Clone(directives), i, pluginName)
}
