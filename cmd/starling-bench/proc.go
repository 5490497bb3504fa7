package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is the kernel's USER_HZ, read from the auxiliary vector
// (AT_CLKTCK) since sysconf needs cgo; 100 on every common Linux.
var clockTicks = func() int64 {
	b, err := os.ReadFile("/proc/self/auxv")
	if err == nil {
		for i := 0; i+16 <= len(b); i += 16 {
			typ := binary.NativeEndian.Uint64(b[i:])
			val := binary.NativeEndian.Uint64(b[i+8:])
			if typ == 17 && val > 0 { // AT_CLKTCK
				return int64(val)
			}
			if typ == 0 {
				break
			}
		}
	}
	return 100
}()

// procCPU returns the CPU time of process pid: the sum of its threads'
// run times in nanoseconds from /proc/PID/task/*/schedstat where the
// kernel has it, else utime+stime from /proc/PID/stat, which counts in
// clock ticks (10 ms): too coarse for a short run, which could read 0.
// (The sum leaves out threads that have exited; none of the servers
// measured lets its threads exit while it runs.)
func procCPU(pid int) (time.Duration, error) {
	if d, err := schedCPU(pid); err == nil {
		return d, nil
	}
	return statCPU(pid)
}

// schedCPU sums the first field of /proc/PID/task/*/schedstat, each
// thread's time on a CPU in nanoseconds.
func schedCPU(pid int) (time.Duration, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(dir + t.Name() + "/schedstat")
		if os.IsNotExist(err) && len(tasks) > 1 {
			continue // the thread exited meanwhile
		}
		if err != nil {
			return 0, err
		}
		f := bytes.Fields(b)
		if len(f) < 1 {
			return 0, fmt.Errorf("%s%s/schedstat: empty", dir, t.Name())
		}
		ns, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, err
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// statCPU returns utime+stime of process pid from /proc/PID/stat.
func statCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := bytes.Fields(b[i+1:])
	// After ')': state(3) ... utime is field 14, stime 15 (1-based over the
	// whole line), i.e. f[11] and f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(ut+st) * time.Second / time.Duration(clockTicks), nil
}

// procRSS returns VmRSS of process pid in bytes from /proc/PID/status.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	i := bytes.Index(b, []byte("\nVmRSS:"))
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	line := b[i+7:]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line) // "12345 kB"
	if len(f) < 1 {
		return 0, fmt.Errorf("/proc/%d/status: bad VmRSS", pid)
	}
	kb, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil {
		return 0, err
	}
	return kb * 1024, nil
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// raiseFileLimit lifts the soft open-file limit to the hard one: each
// session is a socket.
func raiseFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	return rl.Cur
}

// probe samples the server process (if any) and this one.
type probe struct {
	pid     int
	wall    time.Time
	srvCPU  time.Duration
	selfCPU time.Duration
	err     error
}

func sample(pid int) probe {
	p := probe{pid: pid, wall: time.Now(), selfCPU: selfCPU()}
	if pid > 0 {
		p.srvCPU, p.err = procCPU(pid)
	}
	return p
}
