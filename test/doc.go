// Package test holds petset's cross-cutting tests: every Corefile in
// corefile/ and every Corefile example in a README is started as a real
// CoreDNS server and queried. The end-to-end suite against a real control
// plane lives in test/e2e.
package test
