// Package check verifies that every object of a cluster's VDIs has its
// replicas, identical, on the nodes the current epoch places it on, and
// repairs replicas that differ from (or lack) the majority's content: the
// work of `dog cluster check [--repair]`.
//
// It runs only when the current epoch is recovery-complete: during a
// recovery, replicas are expected to be missing. An object no target
// holds reads as zeros everywhere and is consistent; an object some target
// lacks reads as zeros there, which differs from the others' content.
package check
