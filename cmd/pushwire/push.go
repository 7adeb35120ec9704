package main

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/httpapi"
	"github.com/pushwire/pushwire/metrics"
	"github.com/pushwire/pushwire/push"
	"github.com/pushwire/pushwire/webhook"
)

// startPush builds and starts the push service when some app has push on (nil otherwise),
// and returns its stop function.
func startPush(ctx context.Context, cfg *config.Config, hub *channels.Hub, wh *webhook.Sender, m *metrics.Metrics, log *zap.Logger) (*push.Service, func(context.Context) error, error) {
	on := false
	for _, a := range cfg.Apps {
		on = on || a.PushOn()
	}
	if !on {
		return nil, func(context.Context) error { return nil }, nil
	}
	var store push.Store = push.NewMemory()
	closeStore := func() {}
	if cfg.PushStore == "postgres" {
		pg, err := push.NewPostgres(ctx, cfg.DatabaseURL, push.PostgresOptions{Logger: log.Named("push")})
		if err != nil {
			return nil, nil, fmt.Errorf("push store: %w", err)
		}
		store, closeStore = pg, pg.Close
	}
	svc, err := push.New(cfg.Apps, push.Options{Store: store, Logger: log.Named("push"), Metrics: m, Failures: wh, Presence: hub})
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	svc.Start()
	log.Info("push", zap.String("store", cfg.PushStore))
	return svc, func(ctx context.Context) error {
		err := svc.Close(ctx)
		closeStore()
		return err
	}, nil
}

// pushOptions sets the push service and the bridge hook of the HTTP API.
func pushOptions(o *httpapi.Options, svc *push.Service) {
	if svc != nil {
		o.Push, o.PublishHook = svc, svc
	}
}
