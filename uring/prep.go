package uring

import "unsafe"

// The Prep* methods fill an entry from NextSQE (already zeroed) for one
// operation; callers set UserData (and Flags) themselves.

// PrepNop makes a no-op: it completes with res 0.
func (s *SQE) PrepNop() { s.Opcode = OpNop }

// PrepRead reads len(buf) bytes at off from fd into buf. buf must stay
// valid and unmoved until the completion: callers pass mmapped or
// otherwise pinned memory.
func (s *SQE) PrepRead(fd int, buf []byte, off uint64) {
	s.prepRW(OpRead, fd, buf, off)
}

// PrepWrite writes buf to fd at off. The same lifetime rule as PrepRead.
func (s *SQE) PrepWrite(fd int, buf []byte, off uint64) {
	s.prepRW(OpWrite, fd, buf, off)
}

func (s *SQE) prepRW(op uint8, fd int, buf []byte, off uint64) {
	s.Opcode = op
	s.Fd = int32(fd)
	s.Off = off
	if len(buf) > 0 {
		s.Addr = uint64(uintptr(unsafe.Pointer(&buf[0])))
	}
	s.Len = uint32(len(buf))
}

// PrepReadFixed reads into buf, which must lie inside the registered
// buffer bufIndex (RegisterBuffers): the kernel uses the pages it pinned
// at registration instead of pinning buf's pages for every request.
func (s *SQE) PrepReadFixed(fd int, buf []byte, off uint64, bufIndex uint16) {
	s.prepRW(OpReadFixed, fd, buf, off)
	s.BufIndex = bufIndex
}

// PrepReadFixedAt reads n bytes into registered buffer bufIndex, starting
// at byte bufOff of it: for buffers that are not in this process's memory
// (a driver's pages in a sparse slot, whose addresses start at 0).
func (s *SQE) PrepReadFixedAt(fd int, bufIndex uint16, bufOff uint64, n int, off uint64) {
	s.prepFixedAt(OpReadFixed, fd, bufIndex, bufOff, n, off)
}

// PrepWriteFixedAt writes n bytes of registered buffer bufIndex, from
// byte bufOff of it, to fd at off.
func (s *SQE) PrepWriteFixedAt(fd int, bufIndex uint16, bufOff uint64, n int, off uint64) {
	s.prepFixedAt(OpWriteFixed, fd, bufIndex, bufOff, n, off)
}

func (s *SQE) prepFixedAt(op uint8, fd int, bufIndex uint16, bufOff uint64, n int, off uint64) {
	s.Opcode = op
	s.Fd = int32(fd)
	s.Off = off
	s.Addr = bufOff
	s.Len = uint32(n)
	s.BufIndex = bufIndex
}

// PrepWriteFixed writes buf, which must lie inside registered buffer
// bufIndex, to fd at off.
func (s *SQE) PrepWriteFixed(fd int, buf []byte, off uint64, bufIndex uint16) {
	s.prepRW(OpWriteFixed, fd, buf, off)
	s.BufIndex = bufIndex
}

// PrepFsync syncs fd; flags may be FsyncDatasync.
func (s *SQE) PrepFsync(fd int, flags uint32) {
	s.Opcode = OpFsync
	s.Fd = int32(fd)
	s.OpFlags = flags
}

// PrepFallocate is fallocate(fd, mode, off, length).
func (s *SQE) PrepFallocate(fd int, mode uint32, off, length uint64) {
	s.Opcode = OpFallocate
	s.Fd = int32(fd)
	s.Off = off
	s.Addr = length // the kernel reads the length from addr
	s.Len = mode    // and the mode from len
}

// PrepPollAdd waits for events (POLLIN...) on fd, once.
func (s *SQE) PrepPollAdd(fd int, events uint32) {
	s.Opcode = OpPollAdd
	s.Fd = int32(fd)
	s.OpFlags = events
}

// PrepURingCmd makes an IORING_OP_URING_CMD for fd: cmdOp goes in the low
// 32 bits of off, where the kernel's io_uring_sqe.cmd_op lives; the
// command's payload is written by the caller into Ring.Cmd(s).
func (s *SQE) PrepURingCmd(fd int, cmdOp uint32) {
	s.Opcode = OpURingCmd
	s.Fd = int32(fd)
	s.Off = uint64(cmdOp)
}
