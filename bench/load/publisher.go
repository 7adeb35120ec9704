package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// SignedEventRequest builds a signed POST /apps/{id}/events request, as the Pusher server
// SDKs do (protocol.SignAPIRequest: auth_key, auth_timestamp, auth_version, body_md5,
// auth_signature).
func SignedEventRequest(ctx context.Context, baseURL, appID, key, secret, channel, event, data string, now time.Time) (*http.Request, error) {
	body, err := json.Marshal(map[string]string{"name": event, "channel": channel, "data": data})
	if err != nil {
		return nil, err
	}
	return signedPost(ctx, baseURL, "/apps/"+appID+"/events", key, secret, body, now)
}

// signedPost builds a signed POST of a JSON body to path.
func signedPost(ctx context.Context, baseURL, path, key, secret string, body []byte, now time.Time) (*http.Request, error) {
	q := protocol.SignAPIRequest(key, secret, http.MethodPost, path, nil, body, now)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(baseURL, "/")+path+"?"+q, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

// SignedBatchRequest builds a signed POST /apps/{id}/batch_events request carrying one
// event per channels[i] with data[i].
func SignedBatchRequest(ctx context.Context, baseURL, appID, key, secret string, channels []string, event string, data []string, now time.Time) (*http.Request, error) {
	type item struct {
		Name    string `json:"name"`
		Channel string `json:"channel"`
		Data    string `json:"data"`
	}
	items := make([]item, len(channels))
	for i := range channels {
		items[i] = item{event, channels[i], data[i]}
	}
	body, err := json.Marshal(map[string]any{"batch": items})
	if err != nil {
		return nil, err
	}
	return signedPost(ctx, baseURL, "/apps/"+appID+"/batch_events", key, secret, body, now)
}

// publisher sends API events for the phases of a run and counts what the server accepted,
// per channel.
type publisher struct {
	cfg    *Config
	client *http.Client
}

func newPublisher(cfg *Config) *publisher {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        cfg.Publishers * 2,
		MaxIdleConnsPerHost: cfg.Publishers * 2,
		MaxConnsPerHost:     cfg.Publishers * 2,
		IdleConnTimeout:     time.Minute,
	}
	return &publisher{cfg: cfg, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// PublishResult is what one phase of API publishing did.
type PublishResult struct {
	Offered   int64         `json:"offered"`  // publishes scheduled
	Accepted  int64         `json:"accepted"` // HTTP 200
	Errors    int64         `json:"errors"`   // transport errors and non-200 answers
	Seconds   float64       `json:"seconds"`  // from the first to the last publish
	PerChan   map[int]int64 `json:"-"`        // channel index → accepted
	HTTP      HistSnapshot  `json:"http"`     // request round trips
	ErrorText []string      `json:"error_samples,omitempty"`
}

// run publishes at rate per second for d with cfg.Publishers concurrent requests. A publish
// is scheduled every 1/rate; when all publishers are busy the schedule waits (the phase then
// offers less than rate, which the report shows as a lower publish rate).
func (p *publisher) run(ctx context.Context, phase int, rate float64, d time.Duration) PublishResult {
	cfg := p.cfg
	perChan := make([]atomic.Int64, cfg.ChannelCount())
	var accepted, errs atomic.Int64
	var hist Histogram
	var emu sync.Mutex
	var samples []string
	jobs := make(chan int, cfg.Publishers)
	batch := max(cfg.Batch, 1)
	var wg sync.WaitGroup
	for range cfg.Publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				// With --batch, request k carries the events k*batch .. k*batch+batch-1.
				chs := make([]int, batch)
				for j := range chs {
					chs[j] = cfg.publishChannel(k*batch + j)
				}
				now := time.Now()
				var req *http.Request
				var err error
				if batch == 1 {
					req, err = SignedEventRequest(ctx, cfg.HTTPURL, cfg.AppID, cfg.Key, cfg.Secret, cfg.ChannelName(chs[0]), apiEvent, EncodePayload(now.UnixNano(), phase, k, cfg.Payload), now)
				} else {
					names, data := make([]string, batch), make([]string, batch)
					for j, ch := range chs {
						names[j], data[j] = cfg.ChannelName(ch), EncodePayload(now.UnixNano(), phase, k*batch+j, cfg.Payload)
					}
					req, err = SignedBatchRequest(ctx, cfg.HTTPURL, cfg.AppID, cfg.Key, cfg.Secret, names, apiEvent, data, now)
				}
				if err == nil {
					var resp *http.Response
					resp, err = p.client.Do(req)
					if err == nil {
						b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							err = fmt.Errorf("publish: HTTP %d: %.200s", resp.StatusCode, b)
						}
					}
				}
				hist.Record(time.Since(now))
				if err != nil {
					errs.Add(int64(batch))
					emu.Lock()
					if len(samples) < 5 {
						samples = append(samples, err.Error())
					}
					emu.Unlock()
					continue
				}
				accepted.Add(int64(batch))
				for _, ch := range chs {
					perChan[ch].Add(1)
				}
			}
		}()
	}
	start := time.Now()
	end := start.Add(d)
	interval := time.Duration(float64(time.Second) * float64(batch) / rate) // one request per batch
	offered := 0
	// Publishes are scheduled every interval until d has passed; when every publisher is busy
	// the schedule waits, so a server that cannot take the rate gets fewer publishes.
schedule:
	for k := 0; ; k++ {
		at := start.Add(time.Duration(k) * interval)
		if !at.Before(end) {
			break
		}
		if w := time.Until(at); w > 0 {
			select {
			case <-time.After(w):
			case <-ctx.Done():
				break schedule
			}
		}
		if time.Now().After(end) {
			break
		}
		select {
		case jobs <- k:
			offered += batch
		case <-ctx.Done():
			break schedule
		}
	}
	close(jobs)
	wg.Wait()
	res := PublishResult{Offered: int64(offered), Accepted: accepted.Load(), Errors: errs.Load(), Seconds: time.Since(start).Seconds(), HTTP: hist.Snapshot(), ErrorText: samples, PerChan: map[int]int64{}}
	for i := range perChan {
		if v := perChan[i].Load(); v != 0 {
			res.PerChan[i] = v
		}
	}
	return res
}
