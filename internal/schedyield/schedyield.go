package schedyield

import "time"

// Every is how often a goroutine that waits in system calls should yield:
// well under the runtime's 10 ms forced-preemption limit.
const Every = 8 * time.Millisecond

// Pacer says when its goroutine is due to yield. The zero value is due at
// once.
type Pacer struct{ last time.Time }

// Due reports whether Every has passed since the last yield it reported;
// if so, it counts this one as done, and the caller calls runtime.Gosched
// (after anything that must not wait for the yield).
func (p *Pacer) Due() bool {
	now := time.Now()
	if now.Sub(p.last) < Every {
		return false
	}
	p.last = now
	return true
}
