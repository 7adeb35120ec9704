package push

import (
	"context"
	"time"
)

// Store keeps devices, interests, publishes and the outbound queue of deliveries. Memory
// (default) and Postgres implement it; pushtest holds the conformance suite both pass.
//
// Lists are keyset-paged: after is the last key of the previous page ("" for the first).
// Returned records are copies the caller may keep and change.
type Store interface {
	// PutDevice inserts or replaces the device (app, id); created reports an insert. A
	// device whose provider address changed keeps its subscriptions.
	PutDevice(ctx context.Context, d *Device) (created bool, err error)
	// GetDevice returns the device or ErrNotFound.
	GetDevice(ctx context.Context, appID, id string) (*Device, error)
	// GetDevices returns the devices of ids that exist, in ids order.
	GetDevices(ctx context.Context, appID string, ids []string) ([]*Device, error)
	// ListDevices pages the app's devices (of clientID when set) by id.
	ListDevices(ctx context.Context, appID, clientID, after string, limit int) ([]*Device, error)
	// DeleteDevice removes the device and its subscriptions.
	DeleteDevice(ctx context.Context, appID, id string) (bool, error)
	// MarkDevice records a delivery outcome on the device: failed counts a failure (state
	// FAILING, reason kept), success resets it. A missing device is not an error.
	MarkDevice(ctx context.Context, appID, id string, failed bool, reason string) error

	// PutSubscription adds an interest; created is false when it existed.
	PutSubscription(ctx context.Context, s Subscription) (created bool, err error)
	// ListSubscriptions pages interests matching f: one channel's by key (device ones
	// "d:"+id, then user ones "u:"+id), one device's or one user's by channel, or all by
	// channel and key. after is the previous page's Position.
	ListSubscriptions(ctx context.Context, appID string, f Filter, after string, limit int) ([]Subscription, error)
	// DeleteSubscriptions removes the interests matching f (at least one field set).
	DeleteSubscriptions(ctx context.Context, appID string, f Filter) (int, error)
	// ListChannels pages the channels that have interests.
	ListChannels(ctx context.Context, appID, after string, limit int) ([]string, error)

	// CreatePublish stores a new publish; when its id is taken it returns the existing one
	// and created false.
	CreatePublish(ctx context.Context, p *Publish) (stored *Publish, created bool, err error)
	// GetPublish returns the publish or ErrNotFound.
	GetPublish(ctx context.Context, appID, id string) (*Publish, error)
	// CancelPublish cancels a publish not yet planned (scheduled or accepted) and returns
	// it; any other publish is returned unchanged.
	CancelPublish(ctx context.Context, appID, id string) (*Publish, error)
	// ClaimPublish leases one publish due for planning at now (scheduled or accepted with
	// Due <= now, or planning with a lapsed lease) until leaseUntil, marking it planning;
	// nil when none.
	ClaimPublish(ctx context.Context, now, leaseUntil time.Time) (*Publish, error)
	// PlanPublish adds a page of deliveries (one per device; a device already planned for
	// the publish is skipped) and saves p.Cursor, p.LeaseUntil and, with done, the state
	// dispatching (or expired/failed as p.State says). It returns how many were added and
	// adds them to Counters.Planned.
	PlanPublish(ctx context.Context, p *Publish, ds []*Delivery, done bool) (int, error)

	// ClaimDeliveries leases up to limit pending deliveries due at now (Due <= now and no
	// live lease) until leaseUntil, oldest due first.
	ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]*Delivery, error)
	// FinishDeliveries records the outcome of claimed deliveries: State pending (a retry at
	// Due), delivered, failed or expired, with Attempts, Status, Reason, ProviderID and
	// TokenRemoved; it updates their publishes' counters and final state.
	FinishDeliveries(ctx context.Context, ds []*Delivery) error
	// ListDeliveries pages a publish's deliveries by device id.
	ListDeliveries(ctx context.Context, appID, publishID, after string, limit int) ([]*Delivery, error)
	// NextDue returns the earliest time a publish or delivery becomes claimable (ok false
	// when nothing waits).
	NextDue(ctx context.Context) (t time.Time, ok bool, err error)

	// PruneFinished deletes up to limit finished publishes (succeeded, failed, cancelled,
	// expired...) created before before, with their deliveries and receipts; it returns how
	// many it deleted.
	PruneFinished(ctx context.Context, before time.Time, limit int) (int, error)

	// AddDeliveryEvent stores a delivery receipt; a repeated (publish, event id) is ignored.
	AddDeliveryEvent(ctx context.Context, e *DeliveryEvent) error
	// ListDeliveryEvents returns up to limit receipts of a publish, oldest first.
	ListDeliveryEvents(ctx context.Context, appID, publishID string, limit int) ([]*DeliveryEvent, error)
}

// Filter selects interests: by channel, by device or by user (ClientID: the user
// subscriptions of that user).
type Filter struct {
	Channel  string
	DeviceID string
	ClientID string
}

// Position is the paging key of a subscription within lists of f.
func (s Subscription) Position(f Filter) string {
	if f.Channel != "" {
		return s.key()
	}
	if f.DeviceID != "" || f.ClientID != "" {
		return s.Channel
	}
	return s.Channel + "\x00" + s.key()
}
