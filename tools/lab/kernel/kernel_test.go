package kernel

import (
	"reflect"
	"testing"
)

func TestParseDepends(t *testing.T) {
	out := []byte(`linux-image-7.3.4+bpo-cloud-amd64
  Depends: linux-binary-7.3.4+bpo-cloud-amd64
 |Depends: linux-modules-7.3.4+bpo-cloud-amd64
  Depends: <linux-initramfs-tool>
  Recommends: firmware-linux-free
  Breaks: foo
`)
	got := parseDepends(out)
	want := []string{"linux-binary-7.3.4+bpo-cloud-amd64", "linux-modules-7.3.4+bpo-cloud-amd64", "linux-initramfs-tool"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseDepends = %q, want %q", got, want)
	}
}

func TestParseModinfoDepends(t *testing.T) {
	info := []byte("license=GPL\x00depends=virtio_ring,virtio-pci-modern\x00vermagic=6.12\x00")
	got := parseModinfoDepends(info)
	want := []string{"virtio_ring", "virtio_pci_modern"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseModinfoDepends = %q, want %q", got, want)
	}
	if got := parseModinfoDepends([]byte("depends=\x00")); len(got) != 0 {
		t.Fatalf("empty depends gave %q", got)
	}
}

func TestModuleName(t *testing.T) {
	for file, want := range map[string]string{
		"ublk_drv.ko.xz": "ublk_drv", "null_blk.ko": "null_blk", "virtio-pci.ko.zst": "virtio_pci", "vmlinuz": "",
	} {
		got, ok := moduleName(file)
		if got != want || ok != (want != "") {
			t.Errorf("moduleName(%q) = %q, %v; want %q", file, got, ok, want)
		}
	}
}
