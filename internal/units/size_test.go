package units

import "testing"

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"4096": 4096, "512K": 512 << 10, "512M": 512 << 20, "20G": 20 << 30, "20g": 20 << 30,
		"20GiB": 20 << 30, "20GB": 20 << 30, "1T": 1 << 40, "1P": 1 << 50, "1.5G": 3 << 29, "0": 0,
	}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1", "-1G", "2Q", "1.3", "0.1K", "99999999999P", "1e3", "NaNG", "InfG", "1..2G"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{20 << 30: "20G", 512 << 20: "512M", 4096: "4K", 1000: "1000", 3 << 29: "1.5G", 82172235776: "76.5G", 0: "0"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"20G", "512M", "1.5G", "4096", "-1", "1e9", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}
