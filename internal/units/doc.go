// Package units parses and prints byte counts the way disk tools write
// them (20G, 512M: powers of 1024).
package units
