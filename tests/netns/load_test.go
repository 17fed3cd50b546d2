package netns_test

import (
	"sync"
	"testing"
	"time"
)

// load is I/O running through a test: workers goroutines each call a
// write function, one call after another, until stop or the worker's
// first error. A call reports how many writes it had acknowledged; it
// records what they wrote itself, under the load's gate, so that while
// paused nothing is in flight and the record is what the cluster must
// hold.
type load struct {
	write func(worker int) (acked int, err error)
	// stall bounds each waitWrites.
	stall time.Duration

	gate sync.RWMutex // a call holds it shared; pause takes it
	quit chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	mu    sync.Mutex
	count int   // writes acknowledged
	err   error // the first error, which ended its worker
}

func startLoad(workers int, stall time.Duration, write func(worker int) (int, error)) *load {
	l := &load{write: write, stall: stall, quit: make(chan struct{})}
	for w := range workers {
		l.wg.Add(1)
		go l.run(w)
	}
	return l
}

func (l *load) run(w int) {
	defer l.wg.Done()
	for {
		select {
		case <-l.quit:
			return
		default:
		}
		l.gate.RLock()
		n, err := l.write(w)
		l.gate.RUnlock()
		l.mu.Lock()
		l.count += n
		if err != nil && l.err == nil {
			l.err = err
		}
		l.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// pause waits for the calls in flight and holds off new ones until
// resume.
func (l *load) pause()  { l.gate.Lock() }
func (l *load) resume() { l.gate.Unlock() }

// stop ends the workers and waits for them; it may be called again.
func (l *load) stop() {
	l.once.Do(func() { close(l.quit) })
	l.wg.Wait()
}

// error is the first write error, if any.
func (l *load) error() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// acked is how many writes were acknowledged.
func (l *load) acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

// waitWrites waits until n more writes were acknowledged: I/O continues.
// A write error, or fewer than n within the load's stall time, fails the
// test.
func (l *load) waitWrites(t *testing.T, n int) {
	t.Helper()
	want := l.acked() + n
	deadline := time.Now().Add(l.stall)
	for l.acked() < want {
		if err := l.error(); err != nil {
			t.Fatalf("a write failed: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes stalled: %d acknowledged after %v, want %d", l.acked(), l.stall, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
