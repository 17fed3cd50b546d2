package proto

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// NodeInfo describes a node: the body of a NodeInfo reply. Its encoding:
//
//	off size field
//	  0    1 protocol version (Version)
//	  1    1 id length
//	  2    1 zone length
//	  3    1 software version length
//	  4    4 object size
//	  8    8 capacity, bytes
//	 16    8 used, bytes
//	 24    8 objects stored
//	 32    8 epoch
//	 40    - id, zone, software version (UTF-8, each at most MaxNodeString bytes)
type NodeInfo struct {
	ProtocolVersion uint8
	ID              string
	Zone            string
	SoftwareVersion string
	ObjectSize      uint32
	Capacity        uint64
	Used            uint64
	Objects         uint64
	Epoch           uint64
}

const (
	nodeInfoFixedSize = 40
	nodeInfoMaxSize   = nodeInfoFixedSize + 3*MaxNodeString
)

// AppendBinary appends the encoded info to dst; it fails if a string is
// longer than MaxNodeString.
func (n *NodeInfo) AppendBinary(dst []byte) ([]byte, error) {
	for _, s := range [...]string{n.ID, n.Zone, n.SoftwareVersion} {
		if len(s) > MaxNodeString {
			return dst, errorf(StatusInvalidArgument, "node info string of "+strconv.Itoa(len(s))+" bytes, at most "+strconv.Itoa(MaxNodeString))
		}
	}
	dst = append(dst, Version, byte(len(n.ID)), byte(len(n.Zone)), byte(len(n.SoftwareVersion)))
	dst = binary.LittleEndian.AppendUint32(dst, n.ObjectSize)
	dst = binary.LittleEndian.AppendUint64(dst, n.Capacity)
	dst = binary.LittleEndian.AppendUint64(dst, n.Used)
	dst = binary.LittleEndian.AppendUint64(dst, n.Objects)
	dst = binary.LittleEndian.AppendUint64(dst, n.Epoch)
	dst = append(dst, n.ID...)
	dst = append(dst, n.Zone...)
	return append(dst, n.SoftwareVersion...), nil
}

// DecodeNodeInfo decodes a NodeInfo body. The only allocations are the
// three strings.
func DecodeNodeInfo(b []byte) (NodeInfo, error) {
	var n NodeInfo
	if len(b) < nodeInfoFixedSize {
		return n, errorf(StatusInvalidArgument, "node info of "+strconv.Itoa(len(b))+" bytes, want at least "+strconv.Itoa(nodeInfoFixedSize))
	}
	if b[0] != Version {
		return n, errorf(StatusUnsupportedVersion, "node info version "+strconv.Itoa(int(b[0])))
	}
	idLen, zoneLen, swLen := int(b[1]), int(b[2]), int(b[3])
	if want := nodeInfoFixedSize + idLen + zoneLen + swLen; len(b) != want {
		return n, errorf(StatusInvalidArgument, "node info of "+strconv.Itoa(len(b))+" bytes, its lengths say "+strconv.Itoa(want))
	}
	strs := b[nodeInfoFixedSize:]
	id, zone, sw := strs[:idLen], strs[idLen:idLen+zoneLen], strs[idLen+zoneLen:]
	if !utf8.Valid(id) || !utf8.Valid(zone) || !utf8.Valid(sw) {
		return n, errorf(StatusInvalidArgument, "node info string is not UTF-8")
	}
	n = NodeInfo{
		ProtocolVersion: b[0],
		ObjectSize:      binary.LittleEndian.Uint32(b[4:]),
		Capacity:        binary.LittleEndian.Uint64(b[8:]),
		Used:            binary.LittleEndian.Uint64(b[16:]),
		Objects:         binary.LittleEndian.Uint64(b[24:]),
		Epoch:           binary.LittleEndian.Uint64(b[32:]),
		ID:              string(id),
		Zone:            string(zone),
		SoftwareVersion: string(sw),
	}
	if err := CheckObjectSize(n.ObjectSize); err != nil {
		return NodeInfo{}, errorf(StatusInvalidArgument, "node info: "+err.Error())
	}
	return n, nil
}
