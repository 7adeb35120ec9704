package channels_test

import (
	"strconv"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// BenchmarkFanoutSubfeat publishes to 10,000 V2 subscribers of "prices" with and without
// wildcard and filter-expression subscribers, to show what those features cost a fan-out:
//   - plain: no pattern in the app, no filter (the baseline);
//   - other-patterns-1000: 1,000 wildcard patterns that do not match "prices" are subscribed
//     elsewhere in the app (the index look-up on every publish);
//   - wildcard-1000: 1,000 of the 10,000 receive it through "pri*" instead of "prices";
//   - expr-10pct / expr-all: 10% / all subscribers filter with a JMESPath expression (the
//     message is projected once per publish, each distinct expression evaluated once);
//   - expr-distinct-all: every subscriber has its own expression (one evaluation each).
func BenchmarkFanoutSubfeat(b *testing.B) {
	const n = 10_000
	expr := mustFilter(b, "", `{"expression":"tags.market == 'spot' && event == 'tick'"}`)
	cases := []struct {
		name          string
		otherPatterns int
		wildcardSubs  int
		exprEvery     int // every k-th subscriber has the expression; 0 none
		distinct      bool
	}{
		{"plain", 0, 0, 0, false},
		{"other-patterns-1000", 1000, 0, 0, false},
		{"wildcard-1000", 0, 1000, 0, false},
		{"expr-10pct", 0, 0, 10, false},
		{"expr-all", 0, 0, 1, false},
		{"expr-distinct-all", 0, 0, 1, true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			h := benchHub(b, func(a *config.App) { a.MaxWildcardPatterns = 100_000; a.MaxWildcardSubscriptionsPerConnection = 10 })
			subs := make([]*benchSub, n)
			for i := range subs {
				s := newBenchSub(i)
				s.v = protocol.V2
				subs[i] = s
				c := benchConnect(b, h, s)
				req := channels.SubscribeRequest{Channel: "prices"}
				if i < tc.wildcardSubs {
					req.Channel = "pri*"
				}
				if tc.exprEvery > 0 && i%tc.exprEvery == 0 {
					req.Filter = expr
					if tc.distinct {
						req.Filter = mustFilter(b, "", `{"expression":"tags.market == 'spot' && event == 'tick' && `+"`"+strconv.Itoa(i)+"`"+` >= `+"`0`"+`"}`)
					}
				}
				if err := c.Subscribe(req); err != nil {
					b.Fatal(err)
				}
			}
			for i := range tc.otherPatterns {
				s := newBenchSub(n + i)
				s.v = protocol.V2
				c := benchConnect(b, h, s)
				if err := c.Subscribe(channels.SubscribeRequest{Channel: "other-" + strconv.Itoa(i) + "-*"}); err != nil {
					b.Fatal(err)
				}
			}
			for _, s := range subs {
				s.n = 0
			}
			ev := channels.Event{Name: "tick", Channels: []string{"prices"}, Data: `{"symbol":"ACME","bid":101.25,"ask":101.5}`,
				Tags: map[string]string{"market": "spot"}}
			publishLoop(b, h, ev, subs)
		})
	}
}
