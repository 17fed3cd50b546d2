package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestArgsAlwaysSingleThreadedTCGWithoutCX16(t *testing.T) {
	o := Options{Kernel: "k", Initrd: "i", Disks: []string{"/tmp/d.img"}}
	args := strings.Join(o.Args(), " ")
	for _, want := range []string{"-accel tcg,thread=single", "-cpu max,-cx16", "-m 2048", "-smp 2", "-no-reboot",
		"-append console=ttyS0 panic=-1 quiet", "file=/tmp/d.img,format=raw,if=virtio,cache=none"} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu args %q lack %q", args, want)
		}
	}
}

func TestReadLinesSplitsAndCopies(t *testing.T) {
	var got []string
	var console strings.Builder
	err := readLines(strings.NewReader("a\r\nb\npartial"), &console, func(l string) { got = append(got, l) })
	if err != nil || !slices.Equal(got, []string{"a", "b", "partial"}) || console.String() != "a\r\nb\npartial" {
		t.Fatalf("lines %q console %q err %v", got, console.String(), err)
	}
}

// fakeQemu writes a shell script standing in for QEMU.
func fakeQemu(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "qemu")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBootTimesOut(t *testing.T) {
	start := time.Now()
	err := Boot(context.Background(), Options{Qemu: fakeQemu(t, "echo booting; exec sleep 30"), Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want timeout", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("timeout took %s", time.Since(start))
	}
}

func TestBootStopsAfterCrash(t *testing.T) {
	var lines []string
	err := Boot(context.Background(), Options{
		Qemu:       fakeQemu(t, "echo 'Kernel panic - not syncing'; exec sleep 30"),
		Timeout:    20 * time.Second,
		CrashGrace: 100 * time.Millisecond,
		OnLine: func(l string) bool {
			lines = append(lines, l)
			return strings.Contains(l, "panic")
		},
	})
	if err != nil || len(lines) != 1 {
		t.Fatalf("err %v lines %q", err, lines)
	}
}

func TestBootReportsQemuFailure(t *testing.T) {
	if err := Boot(context.Background(), Options{Qemu: fakeQemu(t, "exit 3"), Timeout: 5 * time.Second}); err == nil {
		t.Fatal("a failing qemu was not reported")
	}
}
