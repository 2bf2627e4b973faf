// Package test holds petset's tests that span packages and need no
// cluster (every Corefile in corefile/, a README or deploy/ is started as
// a real CoreDNS server and queried, for one), and helpers that test/e2e
// uses too. The end-to-end suite against a real control plane lives in
// test/e2e.
package test
