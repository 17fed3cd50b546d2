// Package console reads the lab guest's serial console: it recognises the
// marker lines the guest's /init prints around each test, times the tests
// on the host clock, and spots kernel crashes (BUG, Oops, hung tasks,
// panics) so that a run whose guest kernel broke can never pass.
//
// Markers are printed on a line of their own, preceded by a newline so a
// test's unterminated output cannot swallow them:
//
//	@@lab:boot <uname -r>
//	@@lab:begin <test>
//	@@lab:end <test> <exit status>
//	@@lab:done
package console
