package store

import (
	"container/list"
	"errors"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/sheep/proto"
)

// handle is an open object file. refs counts the I/Os using it; a handle
// is closed only when it is out of the cache and unused.
type handle struct {
	oid  proto.ObjectID
	fd   int
	refs int
	elem *list.Element // in handleCache.lru; nil once dropped
}

// handleCache is a bounded LRU of open object files. Callers hold the
// object's stripe lock (read or write) while they hold a handle, so a
// caller holding the write lock knows no handle of that object is in use.
type handleCache struct {
	mu   sync.Mutex
	m    map[proto.ObjectID]*handle
	lru  list.List // front: most recently used
	max  int
	open func(oid proto.ObjectID, create bool) (fd int, err error)
}

func newHandleCache(max int, open func(proto.ObjectID, bool) (int, error)) *handleCache {
	c := &handleCache{m: make(map[proto.ObjectID]*handle, max), max: max, open: open}
	c.lru.Init()
	return c
}

// acquire returns an open handle for oid, opening (and with create,
// creating) the file on a miss.
func (c *handleCache) acquire(oid proto.ObjectID, create bool) (*handle, error) {
	c.mu.Lock()
	if h := c.m[oid]; h != nil {
		h.refs++
		c.lru.MoveToFront(h.elem)
		c.mu.Unlock()
		return h, nil
	}
	c.mu.Unlock()

	// Open outside the lock: a slow open must not stall hits on other objects.
	fd, err := c.open(oid, create)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if other := c.m[oid]; other != nil {
		// Another I/O on the same object opened it meanwhile; use theirs.
		other.refs++
		c.lru.MoveToFront(other.elem)
		c.mu.Unlock()
		unix.Close(fd)
		return other, nil
	}
	h := &handle{oid: oid, fd: fd, refs: 1}
	h.elem = c.lru.PushFront(h)
	c.m[oid] = h
	victims := c.evictLocked()
	c.mu.Unlock()
	closeAll(victims)
	return h, nil
}

// evictLocked takes unused handles off the cold end until the cache fits,
// returning the fds to close once the lock is released. Handles in use
// stay, so the cache may briefly exceed max under heavy concurrency.
func (c *handleCache) evictLocked() []int {
	var victims []int
	for e := c.lru.Back(); e != nil && len(c.m) > c.max; {
		h := e.Value.(*handle)
		prev := e.Prev()
		if h.refs == 0 {
			c.lru.Remove(e)
			delete(c.m, h.oid)
			h.elem = nil
			victims = append(victims, h.fd)
		}
		e = prev
	}
	return victims
}

func (c *handleCache) release(h *handle) {
	c.mu.Lock()
	h.refs--
	if h.refs == 0 && h.elem == nil {
		// Dropped while in use (only possible if a caller broke the stripe
		// lock rule); close it now that the last user is gone.
		unix.Close(h.fd)
	}
	c.mu.Unlock()
}

// drop closes oid's cached handle, if any: after a remove or a rename over
// the object, the cached fd names an inode the object no longer is.
// The caller holds oid's stripe write lock.
func (c *handleCache) drop(oid proto.ObjectID) {
	c.mu.Lock()
	h := c.m[oid]
	if h == nil {
		c.mu.Unlock()
		return
	}
	delete(c.m, oid)
	c.lru.Remove(h.elem)
	h.elem = nil
	inUse := h.refs > 0
	c.mu.Unlock()
	if !inUse {
		unix.Close(h.fd)
	}
}

// len is the number of open handles.
func (c *handleCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// closeAll closes every unused handle; the store is closing.
func (c *handleCache) closeAll() error {
	c.mu.Lock()
	var busy int
	var fds []int
	for oid, h := range c.m {
		if h.refs > 0 {
			busy++
			continue
		}
		c.lru.Remove(h.elem)
		delete(c.m, oid)
		fds = append(fds, h.fd)
	}
	c.mu.Unlock()
	closeAll(fds)
	if busy > 0 {
		return errors.New("object files still in use at close")
	}
	return nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
