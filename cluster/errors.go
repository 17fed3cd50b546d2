package cluster

import "errors"

var (
	// ErrNotFormatted: the cluster has no settings yet; run `dog cluster format`.
	ErrNotFormatted = errors.New("cluster is not formatted")
	// ErrAlreadyFormatted: Format was asked to overwrite settings without Force.
	ErrAlreadyFormatted = errors.New("cluster is already formatted")
	// ErrVDIExists: a VDI of that name exists.
	ErrVDIExists = errors.New("vdi already exists")
	// ErrVDINotFound: no VDI of that name.
	ErrVDINotFound = errors.New("vdi not found")
	// ErrShrink: a resize would shrink a VDI and Force was not given.
	ErrShrink = errors.New("resize would shrink the vdi")
	// ErrVDIIDsExhausted: all 2^24-1 VDI ids have been handed out.
	ErrVDIIDsExhausted = errors.New("vdi ids exhausted")
	// ErrNodeExists: another live node is registered under the same id.
	ErrNodeExists = errors.New("node id already registered")
	// ErrInvalid: an argument is malformed (wrapped with the reason).
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound: no such record (e.g. an epoch number never reached).
	ErrNotFound = errors.New("not found")
	// ErrRecovering: refused while the current epoch is not
	// recovery-complete (a VDI delete could be undone by recovery
	// resurrecting stale copies of its objects).
	ErrRecovering = errors.New("recovery in progress")
	// ErrIncomplete: MarkComplete was asked for an epoch that some member
	// has not finished recovering yet (wrapped with which ones).
	ErrIncomplete = errors.New("recovery not complete on every member")
)
