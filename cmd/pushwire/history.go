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
