// Package testutil holds small helpers shared by the project's tests.
package testutil
