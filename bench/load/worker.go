package load

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// shardHandle is a shard in this process or in a worker process.
type shardHandle interface {
	Connect(ctx context.Context) error
	Stats(n int) (ShardStats, error)
	ClientPhase(ctx context.Context, phase int, rate float64, d time.Duration) error
	Close() error
}

type localShard struct{ s *Shard }

func (l localShard) Connect(ctx context.Context) error { l.s.Connect(ctx); return nil }
func (l localShard) Stats(n int) (ShardStats, error)   { return l.s.Stats(n), nil }
func (l localShard) ClientPhase(ctx context.Context, phase int, rate float64, d time.Duration) error {
	l.s.ClientPhase(ctx, phase, rate, d)
	return nil
}
func (l localShard) Close() error { l.s.Close(); return nil }

// Worker protocol: the parent writes a workerSpec line, then workerCmd lines; the worker
// answers each command with one workerReply line.
type workerSpec struct {
	Config *Config `json:"config"`
	Lo     int     `json:"lo"`
	Hi     int     `json:"hi"`
	Rate   float64 `json:"rate"`
}

type workerCmd struct {
	Cmd      string        `json:"cmd"` // connect, stats, client, close
	N        int           `json:"n,omitempty"`
	Phase    int           `json:"phase,omitempty"`
	Rate     float64       `json:"rate,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
}

type workerReply struct {
	Err   string      `json:"err,omitempty"`
	Stats *ShardStats `json:"stats,omitempty"`
}

// RunWorker serves one shard for a parent pwload over in (commands) and out (replies).
func RunWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	br := bufio.NewReaderSize(in, 64<<10)
	dec := json.NewDecoder(br)
	enc := json.NewEncoder(out)
	var spec workerSpec
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("pwload worker: spec: %w", err)
	}
	s := NewShard(spec.Config, spec.Lo, spec.Hi, spec.Rate)
	for {
		var cmd workerCmd
		if err := dec.Decode(&cmd); err != nil {
			s.Close()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var reply workerReply
		switch cmd.Cmd {
		case "connect":
			s.Connect(ctx)
		case "stats":
			st := s.Stats(cmd.N)
			reply.Stats = &st
		case "client":
			s.ClientPhase(ctx, cmd.Phase, cmd.Rate, cmd.Duration)
		case "close":
			s.Close()
			return enc.Encode(reply)
		default:
			reply.Err = "unknown command " + cmd.Cmd
		}
		if err := enc.Encode(reply); err != nil {
			return err
		}
	}
}

// WorkerEnv is set in the environment of worker processes, so a test binary (which has no
// --worker flag) can recognise one in TestMain and call RunWorker.
const WorkerEnv = "PWLOAD_WORKER"

// remoteShard is a shard served by a child pwload --worker.
type remoteShard struct {
	cmd *exec.Cmd
	enc *json.Encoder
	dec *json.Decoder
	mu  sync.Mutex
}

func startRemote(spec workerSpec) (*remoteShard, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "--worker")
	cmd.Env = append(os.Environ(), WorkerEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pwload: start worker: %w", err)
	}
	r := &remoteShard{cmd: cmd, enc: json.NewEncoder(stdin), dec: json.NewDecoder(bufio.NewReaderSize(stdout, 1<<20))}
	if err := r.enc.Encode(spec); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	return r, nil
}

func (r *remoteShard) call(c workerCmd) (workerReply, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var reply workerReply
	if err := r.enc.Encode(c); err != nil {
		return reply, fmt.Errorf("pwload: worker: %w", err)
	}
	if err := r.dec.Decode(&reply); err != nil {
		return reply, fmt.Errorf("pwload: worker: %w", err)
	}
	if reply.Err != "" {
		return reply, errors.New("pwload: worker: " + reply.Err)
	}
	return reply, nil
}

func (r *remoteShard) Connect(context.Context) error {
	_, err := r.call(workerCmd{Cmd: "connect"})
	return err
}

func (r *remoteShard) Stats(n int) (ShardStats, error) {
	reply, err := r.call(workerCmd{Cmd: "stats", N: n})
	if err != nil {
		return ShardStats{}, err
	}
	if reply.Stats == nil {
		return ShardStats{}, errors.New("pwload: worker sent no stats")
	}
	return *reply.Stats, nil
}

func (r *remoteShard) ClientPhase(_ context.Context, phase int, rate float64, d time.Duration) error {
	_, err := r.call(workerCmd{Cmd: "client", Phase: phase, Rate: rate, Duration: d})
	return err
}

func (r *remoteShard) Close() error {
	_, err := r.call(workerCmd{Cmd: "close"})
	werr := r.cmd.Wait()
	return errors.Join(err, werr)
}
