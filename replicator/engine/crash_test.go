package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/replicator/meta"
)

// The crash test runs the primary in a child process: the test binary
// re-executed with these variables set.
const (
	crashDirEnv  = "VIGIL_ENGINE_CRASH_DIR"
	crashAddrEnv = "VIGIL_ENGINE_CRASH_ADDR"
	crashSeedEnv = "VIGIL_ENGINE_CRASH_SEED"

	crashSlot    = 16 << 10 // bytes per slot: every write rewrites one whole slot
	crashWriters = 4        // writer goroutines; writer g owns the slots s with s%crashWriters == g
)

// crashBlock is a slot's content: slot u32, seq u64, crc32c u32 of the
// rest, then random bytes.
func crashBlock(rng *rand.Rand, slot uint32, seq uint64) []byte {
	b := make([]byte, crashSlot)
	for i := 16; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	binary.LittleEndian.PutUint32(b[0:], slot)
	binary.LittleEndian.PutUint64(b[4:], seq)
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b[16:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// parseCrashBlock returns a slot's sequence number; ok is false if the
// slot does not hold an intact block of that slot. A zero slot (never
// written) is seq 0, ok.
func parseCrashBlock(b []byte, slot uint32) (seq uint64, ok bool) {
	if bytes.Equal(b, make([]byte, len(b))) {
		return 0, true
	}
	if binary.LittleEndian.Uint32(b[0:]) != slot || binary.LittleEndian.Uint32(b[12:]) != crc32.Checksum(b[16:], crc32.MakeTable(crc32.Castagnoli)) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[4:]), true
}

// crashChild is the child's main: the primary engine over the files in
// $VIGIL_ENGINE_CRASH_DIR, dialling the parent's secondary, with writers
// that issue random sync writes and report each one on stdout ("ack slot
// seq") only after Write returned.
func crashChild() int {
	dir := os.Getenv(crashDirEnv)
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR, 0)
	if err != nil {
		return fail(err)
	}
	d, err := NewDataFile(f)
	if err != nil {
		return fail(err)
	}
	st, err := meta.Open(filepath.Join(dir, "meta"))
	if err != nil {
		return fail(err)
	}
	e, err := New(Config{
		Role: Primary, Node: 1, ClusterKey: testKey, ConfigHash: [16]byte{1},
		Data: d, Meta: st, PingInterval: 20 * time.Millisecond, Timeout: 5 * time.Second,
	})
	if err != nil {
		return fail(err)
	}
	nc, err := net.Dial("tcp", os.Getenv(crashAddrEnv))
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	if err := e.Connect(ctx, nc, true); err != nil {
		return fail(err)
	}
	if _, err := os.Stdout.WriteString("ready\n"); err != nil {
		return fail(err)
	}
	slots := volSize / crashSlot
	var wg sync.WaitGroup
	for g := range crashWriters {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			var seq uint64
			for {
				slot := uint32(g + crashWriters*rng.IntN(slots/crashWriters))
				seq++
				if err := e.Write(ctx, uint64(slot)*crashSlot, crashBlock(rng, slot, seq), rng.IntN(5) == 0); err != nil {
					fmt.Fprintln(os.Stderr, "crash child write:", err)
					os.Exit(1)
				}
				// One write system call per line: atomic on the pipe.
				if _, err := fmt.Fprintf(os.Stdout, "ack %d %d\n", slot, seq); err != nil {
					os.Exit(1)
				}
			}
		})
	}
	wg.Wait() // until killed
	return 0
}

// TestCrashSIGKILL: a primary process is killed with SIGKILL at a random
// moment while writing; the secondary, promoted, holds every write the
// primary acknowledged (the newest acknowledged version of each slot, or
// a newer one that is itself intact), and nothing torn. 20 rounds.
func TestCrashSIGKILL(t *testing.T) {
	const rounds = 20
	gens := meta.Generations{Current: 0xabc}
	for round := range rounds {
		rng := rand.New(rand.NewPCG(uint64(round), 161))
		dir := t.TempDir()
		data, err := os.Create(filepath.Join(dir, "data"))
		if err != nil {
			t.Fatal(err)
		}
		if err := data.Truncate(volSize); err != nil {
			t.Fatal(err)
		}
		data.Close()
		ms, err := meta.Create(filepath.Join(dir, "meta"), meta.Superblock{
			VolumeUUID: [16]byte{7}, Size: volSize, BlockSize: 4096,
			Role: uint8(Primary), Flags: meta.FlagConsistent, Gens: gens,
		})
		if err != nil {
			t.Fatal(err)
		}
		ms.Close()
		s := newNode(t, Secondary, 2, gens)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				accepted <- err
				return
			}
			accepted <- s.e.Connect(context.Background(), c, false)
		}()

		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashAddrEnv+"="+ln.Addr().String(), crashSeedEnv+"="+strconv.Itoa(round))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 1 + rng.IntN(400)
		acked := make(map[uint32]uint64)
		sc := bufio.NewScanner(out)
		ready, acks := false, 0
		for sc.Scan() {
			line := sc.Text()
			if line == "ready" {
				ready = true
				if err := <-accepted; err != nil {
					t.Fatalf("round %d: secondary connect: %v", round, err)
				}
				continue
			}
			var slot uint32
			var seq uint64
			if _, err := fmt.Sscanf(line, "ack %d %d", &slot, &seq); err != nil {
				t.Fatalf("round %d: child said %q", round, line)
			}
			if seq > acked[slot] {
				acked[slot] = seq
			}
			if acks++; acks == killAfter {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
		}
		werr := cmd.Wait()
		ln.Close()
		if !ready || acks < killAfter {
			t.Fatalf("round %d: child ended after %d acks (ready %v): %v\n%s", round, acks, ready, werr, stderr.String())
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child not killed: %v\n%s", round, werr, stderr.String())
		}

		// Failover: the cluster drops the dead primary's connection and
		// promotes the secondary, without force.
		s.e.Disconnect()
		if err := s.e.Promote(false); err != nil {
			t.Fatalf("round %d: promote the secondary: %v", round, err)
		}
		buf := make([]byte, crashSlot)
		newer := 0
		for slot := range uint32(volSize / crashSlot) {
			if _, err := s.data.ReadAt(buf, int64(slot)*crashSlot); err != nil {
				t.Fatal(err)
			}
			seq, ok := parseCrashBlock(buf, slot)
			switch {
			case !ok:
				t.Fatalf("round %d: slot %d torn or foreign on the secondary (newest ack %d)", round, slot, acked[slot])
			case seq < acked[slot]:
				t.Fatalf("round %d: slot %d holds seq %d, but %d was acknowledged", round, slot, seq, acked[slot])
			case seq > acked[slot]:
				newer++
			}
		}
		t.Logf("round %d: killed after %d acks on %d slots; %d slots hold a newer unacknowledged write", round, acks, len(acked), newer)
	}
}
