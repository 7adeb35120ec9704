package main

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/cluster"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/httpapi"
	"github.com/pushwire/pushwire/replication"
)

// maxIdempotencyTTL is the longest idempotency_ttl of the apps.
func maxIdempotencyTTL(cfg *config.Config) time.Duration {
	var d time.Duration
	for _, a := range cfg.Apps {
		d = max(d, a.IdempotencyTTL.D())
	}
	return d
}

// startCluster connects the hub to the other nodes (package replication) through the configured broker (nothing for cluster: local) and
// returns the idempotency store every node shares (nil: the API's in-process default) and
// the function that leaves the cluster at shutdown.
func startCluster(ctx context.Context, cfg *config.Config, hub *channels.Hub, reg *prometheus.Registry, log *zap.Logger) (httpapi.Idempotency, func(), error) {
	if cfg.Cluster == "" || cfg.Cluster == "local" {
		return nil, func() {}, nil
	}
	log = log.Named("cluster")
	if cfg.History != "postgres" {
		log.Warn("cluster with history: memory: every node numbers its own serials and keeps its own history, so V2 serials, rewind and resume disagree between nodes; use history: postgres")
	}
	var (
		b   replication.Broker
		err error
	)
	switch cfg.Cluster {
	case "redis":
		b, err = cluster.NewRedis(ctx, cluster.RedisOptions{URL: cfg.RedisURL, Prefix: cfg.ClusterPrefix, Logger: log})
	case "nats":
		b, err = cluster.NewNATS(ctx, cluster.NATSOptions{URL: cfg.NATSURL, Prefix: cfg.ClusterPrefix, Logger: log})
	default:
		err = fmt.Errorf("unknown cluster broker %q", cfg.Cluster)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cluster broker: %w", err)
	}
	var idem httpapi.Idempotency
	closeIdem := func() {}
	if cfg.RedisURL != "" {
		ri, err := cluster.NewRedisIdempotency(ctx, cfg.RedisURL, cfg.ClusterPrefix)
		if err != nil {
			_ = b.Close()
			return nil, nil, fmt.Errorf("cluster idempotency store: %w", err)
		}
		idem, closeIdem = ri, func() { _ = ri.Close() }
	} else if ni, err := cluster.NewNATSIdempotency(ctx, cfg.NATSURL, cfg.ClusterPrefix, maxIdempotencyTTL(cfg)); err == nil {
		idem, closeIdem = ni, func() { _ = ni.Close() }
	} else {
		log.Warn("cluster: no redis_url and no JetStream: publish idempotency keys are remembered per node, so a retry reaching another node may deliver twice", zap.Error(err))
	}

	up := prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushwire_cluster_broker_up",
		Help: "1 while the cluster broker connection is up, 0 while publishes are delivered on this node only."})
	nodes := prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushwire_cluster_nodes",
		Help: "Live cluster nodes this node knows, itself included."})
	localOnly := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushwire_cluster_local_only_messages_total",
		Help: "Messages delivered on this node only because the cluster broker was down or refused them."}, []string{"app_id"})
	refused := prometheus.NewCounter(prometheus.CounterOpts{Name: "pushwire_cluster_refused_envelopes_total",
		Help: "Envelopes from other nodes dropped because their format's major version is newer than this node reads."})
	if reg != nil {
		reg.MustRegister(up, nodes, localOnly, refused)
	}
	for _, a := range cfg.Apps {
		localOnly.WithLabelValues(a.ID) // exported at 0 from the first scrape
	}
	node, err := replication.Start(ctx, hub, b, replication.Options{
		Heartbeat:   cfg.ClusterHeartbeat.D(),
		NodeTimeout: cfg.ClusterNodeTimeout.D(),
		OnBrokerState: func(ok bool) {
			if ok {
				up.Set(1)
			} else {
				up.Set(0)
			}
		},
		OnLocalOnly:       func(appID string) { localOnly.WithLabelValues(appID).Inc() },
		OnNodes:           func(n int) { nodes.Set(float64(n)) },
		OnRefusedEnvelope: func(string, int) { refused.Inc() },
	})
	if err != nil {
		closeIdem()
		_ = b.Close()
		return nil, nil, fmt.Errorf("cluster: %w", err)
	}
	log.Info("cluster", zap.String("broker", cfg.Cluster), zap.String("node", b.NodeID()))
	return idem, func() {
		node.Stop()
		if err := b.Close(); err != nil {
			log.Warn("cluster: broker close", zap.Error(err))
		}
		closeIdem()
	}, nil
}
