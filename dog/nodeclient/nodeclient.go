package nodeclient

import (
	"context"
	"fmt"
	"time"

	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// Client talks to one node.
type Client struct {
	id      string
	rpc     *rpc.Client
	timeout time.Duration
}

// Dial makes a client of node id at addr (the connection is made by the
// first call). timeout bounds each call.
func Dial(id, addr string, opts rpc.ClientOptions, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	opts.CallTimeout = timeout
	return &Client{id: id, rpc: rpc.NewClient(addr, opts), timeout: timeout}
}

// ID is the node's id.
func (c *Client) ID() string { return c.id }

// Close drops the connection.
func (c *Client) Close() error { return c.rpc.Close() }

// roundTrip sends req (with reqBody) and returns the reply's body (in
// body's memory, which must hold the largest reply expected and at least
// an error message) and header, or the node's error.
func (c *Client) roundTrip(ctx context.Context, req proto.Request, reqBody, body []byte) ([]byte, proto.Response, error) {
	if len(body) < proto.MaxErrorMessage {
		body = make([]byte, proto.MaxErrorMessage)
	}
	var hdr [proto.RequestSize]byte
	var call rpc.Call
	call.ReqHeader, _ = req.AppendBinary(hdr[:0])
	call.ReqBody = reqBody
	call.RespHeader = make([]byte, proto.ResponseSize)
	call.RespBody = body
	call.Deadline = time.Now().Add(c.timeout)
	if err := c.rpc.Do(ctx, &call); err != nil {
		return nil, proto.Response{}, fmt.Errorf("node %s: %w", c.id, err)
	}
	resp, err := proto.DecodeResponse(call.RespHeader, call.RespBody, &req)
	if err != nil {
		return nil, resp, fmt.Errorf("node %s: bad reply to %s: %w", c.id, req.Op, err)
	}
	if err := resp.Err(call.RespBody); err != nil {
		return nil, resp, fmt.Errorf("node %s: %s: %w", c.id, req.Op, err)
	}
	return call.RespBody, resp, nil
}

// Info asks the node to describe itself, and checks it is the node the
// client was made for: anything else listening at the address must not be
// mistaken for it.
func (c *Client) Info(ctx context.Context) (proto.NodeInfo, error) {
	body, _, err := c.roundTrip(ctx, proto.Request{Op: proto.OpNodeInfo}, nil, make([]byte, 4096))
	if err != nil {
		return proto.NodeInfo{}, err
	}
	info, err := proto.DecodeNodeInfo(body)
	if err != nil {
		return proto.NodeInfo{}, fmt.Errorf("node %s: node info: %w", c.id, err)
	}
	if info.ID != c.id {
		return proto.NodeInfo{}, fmt.Errorf("node %s: the node at its address is %q", c.id, info.ID)
	}
	return info, nil
}

// List returns the ids of the objects the node holds (current copies) in
// [from, end).
func (c *Client) List(ctx context.Context, from, end proto.ObjectID) ([]proto.ObjectID, error) {
	var ids []proto.ObjectID
	body := make([]byte, 8*proto.MaxListPage)
	for cursor := from; ; {
		req := proto.Request{Op: proto.OpListObjects, Length: proto.MaxListPage, Object: cursor, Aux: uint64(end)}
		page, resp, err := c.roundTrip(ctx, req, nil, body)
		if err != nil {
			return nil, err
		}
		list, err := proto.DecodeObjectList(page, req.Length)
		if err != nil {
			return nil, fmt.Errorf("node %s: list objects: %w", c.id, err)
		}
		for i := range list.Len() {
			ids = append(ids, list.At(i))
		}
		if resp.Flags&proto.RespMore == 0 {
			return ids, nil
		}
		if next := proto.ObjectID(resp.Aux); next > cursor {
			cursor = next
		} else {
			return nil, fmt.Errorf("node %s: list objects: cursor %v does not advance", c.id, next)
		}
	}
}

// Read reads len(p) bytes of object oid at off as of epoch (the node
// refuses with proto.StatusWrongEpoch if it is on another).
func (c *Client) Read(ctx context.Context, epoch uint64, oid proto.ObjectID, off uint64, p []byte) error {
	req := proto.Request{Op: proto.OpRead, Epoch: epoch, Object: oid, Offset: off, Length: uint32(len(p))}
	body, _, err := c.roundTrip(ctx, req, nil, p)
	if err != nil {
		return err
	}
	if len(body) != len(p) {
		return fmt.Errorf("node %s: read of %d bytes returned %d", c.id, len(p), len(body))
	}
	if len(p) > 0 && &body[0] != &p[0] { // p was too small for an error reply
		copy(p, body)
	}
	return nil
}

// Write writes p to object oid at off in epoch, durably (FUA).
func (c *Client) Write(ctx context.Context, epoch uint64, oid proto.ObjectID, off uint64, p []byte) error {
	req := proto.Request{Op: proto.OpWrite, Flags: proto.FlagFUA, Epoch: epoch, Object: oid, Offset: off, Length: uint32(len(p))}
	_, _, err := c.roundTrip(ctx, req, p, nil)
	return err
}

// Remove deletes object oid from the node in epoch.
func (c *Client) Remove(ctx context.Context, epoch uint64, oid proto.ObjectID) error {
	_, _, err := c.roundTrip(ctx, proto.Request{Op: proto.OpRemove, Epoch: epoch, Object: oid}, nil, nil)
	return err
}
