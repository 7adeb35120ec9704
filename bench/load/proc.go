package load

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ReadRSS returns VmRSS of a process in KiB, from /proc/<pid>/status.
func ReadRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("pwload: odd VmRSS line %q", line)
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("pwload: no VmRSS line")
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// ReadCPU returns the user+system CPU time a process has used, from /proc/<pid>/stat.
func ReadCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

func parseStatCPU(stat []byte) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may hold spaces: skip past the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("pwload: odd /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("pwload: short /proc stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("pwload: bad utime/stime in /proc stat")
	}
	return time.Duration(u+s) * time.Second / clockTicks, nil
}

// selfCPU is the CPU time of this process and its waited-for children (worker processes).
func selfCPU() time.Duration {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration {
		return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
	}
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// cpuSample is a reading of the machine's CPU time and of the processes a run accounts for
// (the server and the load tool with its workers), to tell how much CPU something else took.
type cpuSample struct {
	at          time.Time
	total, busy int64         // jiffies over all CPUs, from /proc/stat
	ours        time.Duration // server + load tool CPU time
}

func readMachineCPU() (total, busy int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseMachineCPU(b)
}

// parseMachineCPU sums the first /proc/stat line: total jiffies, and the busy ones of
// processes (user, nice, system). Interrupt and softirq time (the loopback network stack) and
// steal are not charged to any process, so they are left out of busy.
func parseMachineCPU(stat []byte) (total, busy int64, err error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("pwload: odd /proc/stat")
	}
	for i, s := range f[1:] {
		if i >= 8 { // guest time is already counted in user time
			break
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("pwload: odd /proc/stat")
		}
		total += v
		if i <= 2 {
			busy += v
		}
	}
	return total, busy, nil
}

// sampleCPU reads the machine and the given processes (unreadable ones count as zero).
func sampleCPU(pids []int) cpuSample {
	s := cpuSample{at: time.Now()}
	s.total, s.busy, _ = readMachineCPU()
	for _, p := range pids {
		if d, err := ReadCPU(p); err == nil {
			s.ours += d
		}
	}
	return s
}

// otherCPUPct is the CPU used between two samples by processes other than ours, in percent
// of one core.
func otherCPUPct(a, b cpuSample, cores int) float64 {
	dt, db := b.total-a.total, b.busy-a.busy
	wall := b.at.Sub(a.at).Seconds()
	if dt <= 0 || wall <= 0 {
		return 0
	}
	busyCores := float64(db) / float64(dt) * float64(cores)
	ours := (b.ours - a.ours).Seconds() / wall
	return max(100*(busyCores-ours), 0)
}
