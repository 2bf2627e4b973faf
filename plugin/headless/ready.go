package headless

// Ready implements ready.Readiness: the plugin is ready once it has
// published its first snapshot.
func (h *Headless) Ready() bool { return h.snap.Load() != nil }
