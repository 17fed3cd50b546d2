// Package results reads what the guest benchmark scripts print on the lab
// console (@@bench: marker lines, one JSON record each) and turns the runs
// into medians, spreads and ublk/peer ratios checked against the plan's
// targets.
package results
