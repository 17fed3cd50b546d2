// Package logging builds the zerolog loggers every binary of the project
// uses: human-readable on a terminal, JSON otherwise, one flag to choose.
package logging
