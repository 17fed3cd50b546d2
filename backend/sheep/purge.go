package sheep

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// PurgeOptions are the arguments of Purge.
type PurgeOptions struct {
	Cluster *cluster.Client
	// VDI is the deleted VDI whose objects go (its id and object size).
	VDI cluster.VDI
	// CallTimeout bounds each call (default 5s).
	CallTimeout time.Duration
	// RPC configures the connection to each node (its CallTimeout is
	// CallTimeout).
	RPC rpc.ClientOptions
}

// PurgeResult says what Purge did.
type PurgeResult struct {
	Removed int `json:"removed"`
	// Unreached are the epoch members that are down or failed: their
	// copies of the VDI's objects stay until a later purge.
	Unreached []string `json:"unreached,omitempty"`
}

// Purge removes every object of a VDI from every live node: what a
// deleted VDI leaves behind. It is safe only once the VDI is deleted from
// the table (its id is never reused, so nothing writes those objects
// again).
func Purge(ctx context.Context, opts PurgeOptions) (PurgeResult, error) {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 5 * time.Second
	}
	var res PurgeResult
	members, err := opts.Cluster.Members(ctx)
	if err != nil {
		return res, fmt.Errorf("purge vdi %s: %w", opts.VDI.Name, err)
	}
	var errs []error
	for _, n := range members {
		if n.State == cluster.NodeDown || n.Addr == "" {
			res.Unreached = append(res.Unreached, n.ID)
			continue
		}
		removed, err := purgeNode(ctx, n, opts)
		res.Removed += removed
		if err != nil {
			res.Unreached = append(res.Unreached, n.ID)
			errs = append(errs, fmt.Errorf("node %s: %w", n.ID, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("purge vdi %s: %w", opts.VDI.Name, err)
	}
	return res, nil
}

func purgeNode(ctx context.Context, n cluster.Node, opts PurgeOptions) (int, error) {
	rpcOpts := opts.RPC
	rpcOpts.CallTimeout = opts.CallTimeout
	client := rpc.NewClient(n.Addr, rpcOpts)
	defer client.Close()
	ictx, cancel := context.WithTimeout(ctx, opts.CallTimeout)
	err := identify(ictx, client, n.ID, opts.VDI.ObjectSize)
	cancel()
	if err != nil {
		return 0, err
	}
	first := proto.NewObjectID(opts.VDI.ID, 0)
	end := uint64(first) + 1<<32 // every object index of the VDI
	var ids []proto.ObjectID
	for cursor := uint64(first); ; {
		page, next, more, err := listPage(ctx, client, cursor, end, opts.CallTimeout)
		if err != nil {
			return 0, err
		}
		ids = append(ids, page...)
		if !more {
			break
		}
		if next <= cursor {
			return 0, fmt.Errorf("list objects: cursor %x does not advance", next)
		}
		cursor = next
	}
	removed := 0
	for _, oid := range ids {
		err := removeObject(ctx, opts.Cluster, client, oid, opts.CallTimeout)
		if errors.Is(err, proto.StatusNotFound) {
			continue // gone meanwhile
		}
		if err != nil {
			return removed, fmt.Errorf("remove object %v: %w", oid, err)
		}
		removed++
	}
	return removed, nil
}

// removeObject removes oid from the node behind client. Remove is a data
// op: it carries the cluster's epoch, and a node in another epoch refuses
// it, so on StatusWrongEpoch the epoch is read again and the remove
// retried (a few times: epochs change seldom).
func removeObject(ctx context.Context, cl *cluster.Client, client *rpc.Client, oid proto.ObjectID, timeout time.Duration) error {
	var err error
	for attempt := range 5 {
		var e cluster.Epoch
		if e, err = cl.Epoch(ctx); err != nil {
			return err
		}
		err = call(ctx, client, proto.Request{Op: proto.OpRemove, Object: oid, Epoch: e.Number}, timeout)
		if !errors.Is(err, proto.StatusWrongEpoch) && !errors.Is(err, proto.StatusNotReady) {
			return err
		}
		select { // the node is applying an epoch change
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return err
}

// listPage lists object ids in [from, end), one page.
func listPage(ctx context.Context, client *rpc.Client, from, end uint64, timeout time.Duration) ([]proto.ObjectID, uint64, bool, error) {
	req := proto.Request{Op: proto.OpListObjects, Length: proto.MaxListPage, Object: proto.ObjectID(from), Aux: end}
	body := make([]byte, 8*proto.MaxListPage)
	var resp proto.Response
	body, resp, err := roundTrip(ctx, client, req, body, timeout)
	if err != nil {
		return nil, 0, false, fmt.Errorf("list objects: %w", err)
	}
	list, err := proto.DecodeObjectList(body, req.Length)
	if err != nil {
		return nil, 0, false, fmt.Errorf("list objects: %w", err)
	}
	ids := make([]proto.ObjectID, list.Len())
	for i := range ids {
		ids[i] = list.At(i)
	}
	return ids, resp.Aux, resp.Flags&proto.RespMore != 0, nil
}

// call makes one request whose reply has no data.
func call(ctx context.Context, client *rpc.Client, req proto.Request, timeout time.Duration) error {
	_, _, err := roundTrip(ctx, client, req, make([]byte, proto.MaxErrorMessage), timeout)
	return err
}

// roundTrip sends req and returns the reply body (in body's memory) and
// header, or the node's error.
func roundTrip(ctx context.Context, client *rpc.Client, req proto.Request, body []byte, timeout time.Duration) ([]byte, proto.Response, error) {
	return roundTripWith(ctx, client, req, nil, body, timeout)
}

// roundTripWith is roundTrip with a request body.
func roundTripWith(ctx context.Context, client *rpc.Client, req proto.Request, reqBody, body []byte, timeout time.Duration) ([]byte, proto.Response, error) {
	var hdr [proto.RequestSize]byte
	var c rpc.Call
	c.ReqHeader, _ = req.AppendBinary(hdr[:0])
	c.ReqBody = reqBody
	c.RespHeader = make([]byte, proto.ResponseSize)
	c.RespBody = body
	c.Deadline = time.Now().Add(timeout)
	if err := client.Do(ctx, &c); err != nil {
		return nil, proto.Response{}, err
	}
	resp, err := proto.DecodeResponse(c.RespHeader, c.RespBody, &req)
	if err != nil {
		return nil, resp, err
	}
	if err := resp.Err(c.RespBody); err != nil {
		return nil, resp, err
	}
	return c.RespBody, resp, nil
}
