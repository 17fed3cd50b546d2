package sheep

import (
	"fmt"
	"io/fs"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/sheep/proto"
	"github.com/sheepblk/sheepblk/sheep/store"
)

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want proto.Status
	}{
		{fmt.Errorf("wrapped: %w", store.ErrRange), proto.StatusOutOfRange},
		{store.ErrClosed, proto.StatusShuttingDown},
		{fmt.Errorf("remove object 1: %w", fs.ErrNotExist), proto.StatusNotFound},
		{fmt.Errorf("write object 1: %w", unix.ENOSPC), proto.StatusNoSpace},
		{fmt.Errorf("write object 1: %w", unix.EDQUOT), proto.StatusNoSpace},
		{fmt.Errorf("read object 1: %w", unix.EIO), proto.StatusIOError},
		{&proto.Error{Status: proto.StatusWrongEpoch, Reason: "x"}, proto.StatusWrongEpoch},
	} {
		if got := statusOf(tc.err); got != tc.want {
			t.Errorf("statusOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
