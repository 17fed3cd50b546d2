// Package netns holds a host test of a sheep cluster whose nodes run in
// network namespaces of their own, each with its own address on a bridge
// the test creates (10.77.0.0/24), as separate `sheep` processes: the
// client gateway (backend/sheep) in the test process and `dog` reach them
// over the bridge as they would reach nodes on other machines.
//
// The test needs root and iproute2's `ip`; it skips with the reason
// otherwise. It removes every namespace and link it creates, on failure
// too, and at start removes those left by an earlier run that was killed.
// There is no non-test code here.
package netns
