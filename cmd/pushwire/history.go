package main

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/annotations"
	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/presencehistory"
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

// presenceHistory is the presence-history service over the history store's presence store
// (memory or postgres; none: every read is refused as disabled). A cluster needs the shared
// Postgres store for one presence stream per channel; with the memory store each node
// records only its own changes, which is logged.
func presenceHistory(cfg *config.Config, hist channels.History, log *zap.Logger) *presencehistory.Service {
	return presencehistory.New(presenceStore(cfg, hist, log), cfg.Apps, presencehistory.Options{Logger: log.Named("presencehistory")})
}

func presenceStore(cfg *config.Config, hist channels.History, log *zap.Logger) presencehistory.Store {
	ph, ok := hist.(presencehistory.Store)
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

// annotationStore is the history store when it keeps mutable messages and their
// annotations (memory and postgres both do), nil otherwise.
func annotationStore(hist channels.History) annotations.Store {
	if _, ok := hist.(channels.Versions); !ok {
		return nil
	}
	st, _ := hist.(annotations.Store)
	return st
}
