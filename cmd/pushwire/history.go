package main

import (
	"context"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
)

// openHistory builds the configured history store and its close function.
func openHistory(_ context.Context, cfg *config.Config, log *zap.Logger) (channels.History, func(), error) {
	mem := history.NewMemory(history.MemoryOptions{MaxMessagesPerChannel: cfg.HistoryMaxMessages, MaxAge: cfg.HistoryMaxAge.D()})
	log.Info("history", zap.String("store", "memory"))
	return mem, func() {}, nil
}
