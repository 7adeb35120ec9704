package main

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
)

// openHistory builds the configured history store and its close function.
func openHistory(ctx context.Context, cfg *config.Config, log *zap.Logger) (channels.History, func(), error) {
	if cfg.History == "postgres" {
		pg, err := history.NewPostgres(ctx, cfg.DatabaseURL, history.PostgresOptions{
			MaxMessagesPerChannel: cfg.HistoryMaxMessages,
			MaxAge:                cfg.HistoryMaxAge.D(),
			Logger:                log.Named("history"),
		})
		if err != nil {
			return nil, nil, fmt.Errorf("history store: %w", err)
		}
		log.Info("history", zap.String("store", "postgres"))
		return pg, pg.Close, nil
	}
	mem := history.NewMemory(history.MemoryOptions{MaxMessagesPerChannel: cfg.HistoryMaxMessages, MaxAge: cfg.HistoryMaxAge.D()})
	log.Info("history", zap.String("store", "memory"))
	return mem, mem.Close, nil
}

// presenceStore is the presence-history store: the history store's (memory or postgres).
// A cluster needs the shared Postgres store for one presence stream per channel; with the
// memory store each node records only its own changes, which is logged.
func presenceStore(cfg *config.Config, hist channels.History, log *zap.Logger) channels.PresenceHistory {
	ph, ok := hist.(channels.PresenceHistory)
	if !ok {
		return nil
	}
	if cfg.Cluster != "local" && cfg.History != "postgres" {
		for _, a := range cfg.Apps {
			if a.PresenceHistory.On() {
				log.Warn("presence history in a cluster with the memory history store: each node keeps only its own members' changes; use history: postgres",
					zap.String("app_id", a.ID))
			}
		}
	}
	return ph
}
