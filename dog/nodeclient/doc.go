// Package nodeclient is dog's client of one sheep node: node info, object
// listing, whole-object reads and writes pinned to an epoch. It is for
// administration (node list, cluster check), not the data path (that is
// backend/sheep): one request at a time, no retries.
package nodeclient
