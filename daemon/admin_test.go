package daemon

import "testing"

func TestMountPointIn(t *testing.T) {
	const info = `22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
35 22 259:3 / /mnt/data rw,relatime shared:7 - ext4 /dev/ublkb0 rw
36 22 259:3 / /srv/again rw,relatime shared:8 - ext4 /dev/ublkb0 rw`
	if got := mountPointIn(info, 259, 3); got != "/mnt/data" {
		t.Fatalf("mounted device: %q", got)
	}
	if got := mountPointIn(info, 259, 4); got != "" {
		t.Fatalf("unmounted device: %q", got)
	}
	if got := mountPointIn("garbage\n\n1 2", 0, 0); got != "" {
		t.Fatalf("garbage: %q", got)
	}
}
