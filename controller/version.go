package controller

// Version is the ordinal controller's version; release builds set it with
// -ldflags "-X petset.dev/petset/controller.Version=...".
var Version = "0.1.0-dev"
