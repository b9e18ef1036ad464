package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of /proc/stat's times (USER_HZ, 100 on Linux).
const userHZ = 100

// cpuUse is the machine's CPU time as /proc/stat counts it: busy (every
// state but idle and iowait) summed over the CPUs, and the CPUs.
type cpuUse struct {
	busy time.Duration
	cpus int
}

// readCPU reads /proc/stat.
func readCPU() (cpuUse, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuUse{}, fmt.Errorf("cpu time: %w", err)
	}
	return parseCPU(b)
}

// parseCPU parses /proc/stat: the "cpu" line's states (user nice system
// idle iowait irq softirq steal ...), and the "cpuN" lines' count.
func parseCPU(b []byte) (cpuUse, error) {
	var u cpuUse
	found := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 || !bytes.HasPrefix(f[0], []byte("cpu")) {
			continue
		}
		if len(f[0]) > 3 {
			u.cpus++
			continue
		}
		if len(f) < 9 {
			return cpuUse{}, errors.New("cpu time: short cpu line in /proc/stat")
		}
		var ticks int64
		for i, s := range f[1:9] { // guest time is within user already
			n, err := strconv.ParseInt(string(s), 10, 64)
			if err != nil {
				return cpuUse{}, fmt.Errorf("cpu time: %w", err)
			}
			if i != 3 && i != 4 { // idle, iowait
				ticks += n
			}
		}
		u.busy = time.Duration(ticks) * time.Second / userHZ
		found = true
	}
	if !found || u.cpus == 0 {
		return cpuUse{}, errors.New("cpu time: no cpu lines in /proc/stat")
	}
	return u, nil
}

// cpuMeter measures the machine's busy CPU time over a run.
type cpuMeter struct{ start cpuUse }

// startCPU starts a meter; a machine without /proc/stat measures nothing.
func startCPU() cpuMeter {
	u, _ := readCPU()
	return cpuMeter{u}
}

// busy returns the busy CPU time since the meter started, 0 if unknown.
func (m cpuMeter) busy() time.Duration {
	u, err := readCPU()
	if err != nil || m.start.cpus == 0 {
		return 0
	}
	return u.busy - m.start.busy
}
