// Package etcdquorum holds issue 6's test 3: a sheep cluster over a
// 3-member etcd whose members are stopped one at a time. The data path
// does not need etcd; membership changes need its quorum, wait without it
// (and say so), and happen once it is back.
package etcdquorum
