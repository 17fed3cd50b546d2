package schedyield

import (
	"testing"
	"time"
)

// Due says yes once per Every: at once, then not again until Every passed.
func TestPacerDueOncePerPeriod(t *testing.T) {
	var p Pacer
	if !p.Due() {
		t.Fatal("a new pacer is not due")
	}
	if p.Due() {
		t.Fatal("due again at once")
	}
	time.Sleep(Every + time.Millisecond)
	if !p.Due() {
		t.Fatalf("not due after %v", Every+time.Millisecond)
	}
	if p.Due() {
		t.Fatal("due twice after one period")
	}
}
