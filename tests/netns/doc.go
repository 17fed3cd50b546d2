// Package netns holds host tests of a sheep cluster whose nodes run in
// network namespaces of their own, each with its own address on a bridge
// the test creates (10.77.0.0/24), as separate `sheep` processes: the
// client gateway (backend/sheep) in the test process and `dog` reach them
// over the bridge as they would reach nodes on other machines.
//
//   - TestReplicationAcrossNamespaces: replicated writes and reads, every
//     object on its 3 nodes byte-identical;
//   - TestNodeFaultsUnderLoad (issue 4 §3): with checksummed writes running,
//     a node frozen (kill -STOP) for 5 s, a node's link down for 5 s, a
//     node killed (kill -9) and restarted: I/O stalls and continues with no
//     error, and after each fault every acknowledged write reads back and
//     every object's replicas are identical;
//   - TestMembershipFaults (issue 6): epochs, automatic membership and online
//     recovery through node deaths, joins, stale returns and partitions.
//
// The tests need root and iproute2's `ip`; they skip with the reason
// otherwise. They remove every namespace and link they create, on failure
// too, and at start remove those left by an earlier run that was killed.
// There is no non-test code here.
package netns
