// Command benchaws measures an aws_vip failover's AWS side against the
// emulator with a fixed latency injected into every call: the route
// switch of three route tables, made in parallel, beside the same three
// calls made one by one in the same run (make bench-aws).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/vigil-ha/vigil/awsops/awsemu"
	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/control/resource"
	"github.com/vigil-ha/vigil/dataplane/vip"
)

func main() {
	world := flag.String("world", "examples/awsemu-world.yaml", "emulator world `file`")
	latency := flag.Duration("latency", 100*time.Millisecond, "latency injected into every AWS call")
	trials := flag.Int("trials", 10, "trials of each measurement")
	flag.Parse()
	if err := run(*world, *latency, *trials); err != nil {
		fmt.Fprintf(os.Stderr, "bench-aws: %v\n", err)
		os.Exit(1)
	}
}

func run(worldFile string, latency time.Duration, trials int) error {
	w, err := awsemu.LoadWorld(worldFile)
	if err != nil {
		return err
	}
	if len(w.Credentials) == 0 || len(w.Instances) < 2 {
		return errors.New("the world needs a credential and two instances")
	}
	emu := awsemu.New(w)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	imdsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	imdsSrv := &http.Server{Handler: emu.IMDSHandler(w.Instances[0].ID), ReadHeaderTimeout: 10 * time.Second}
	go imdsSrv.Serve(imdsLn)
	defer imdsSrv.Close()

	cred := w.Credentials[0]
	env := &resource.AWSEnv{
		Settings: config.AWS{
			Region:        w.Region,
			Endpoint:      "http://" + ln.Addr().String(),
			IMDSEndpoint:  "http://" + imdsLn.Addr().String(),
			CallTimeoutMS: int((10 * latency).Milliseconds()) + 1000,
		},
		Credentials: credentials.NewStaticCredentialsProvider(cred.AccessKeyID, cred.SecretAccessKey, ""),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	client, err := env.Client(ctx)
	if err != nil {
		return err
	}
	inst, err := env.Instance(ctx)
	if err != nil {
		return err
	}
	vipAddr := netip.MustParseAddr("10.1.0.20")
	tables, err := client.VIPRouteTables(ctx, inst.VPCID, vipAddr)
	if err != nil {
		return err
	}
	if len(tables) < 3 {
		return fmt.Errorf("the world has %d route tables with a route for %s/32, want 3", len(tables), vipAddr)
	}
	tables = tables[:3]
	emu.SetFault("*", awsemu.Fault{Latency: latency})

	// One call alone, the unit of the goal.
	var single, parallel, sequential, start, cold []time.Duration
	other := otherENI(w, inst.ENIID)
	for i := range trials {
		eni := inst.ENIID
		if i%2 == 1 {
			eni = other // switch back and forth: every call changes a route
		}
		t0 := time.Now()
		if err := client.PointVIPRoutes(ctx, vipAddr, eni, tables[:1]); err != nil {
			return err
		}
		single = append(single, time.Since(t0))

		t0 = time.Now()
		if err := client.PointVIPRoutes(ctx, vipAddr, eni, tables); err != nil {
			return err
		}
		parallel = append(parallel, time.Since(t0))

		t0 = time.Now()
		for _, rt := range tables {
			if err := client.PointVIPRoutes(ctx, vipAddr, eni, []string{rt}); err != nil {
				return err
			}
		}
		sequential = append(sequential, time.Since(t0))
	}
	// The whole resource start, as a failover runs it: prepared (the
	// standby did its checks ahead) and cold (it did not).
	for _, prepared := range []bool{true, false} {
		for range trials {
			b := resource.AWSVIPBinding(vipAddr, "bench0")
			v := &resource.AWSVIP{Name: "awsvip1", VIP: vipAddr, Binding: b,
				Addrs: resource.NewAddrSet(vip.NewFake([]vip.Binding{b})), AWS: env}
			if prepared {
				v.Prepare(ctx)
			}
			t0 := time.Now()
			if err := v.Start(ctx); err != nil {
				return err
			}
			d := time.Since(t0)
			if prepared {
				start = append(start, d)
			} else {
				cold = append(cold, d)
			}
			if err := client.PointVIPRoutes(ctx, vipAddr, other, tables); err != nil {
				return err
			}
		}
	}

	report := func(name string, ds []time.Duration) {
		fmt.Printf("bench-aws: %-34s n=%d median=%s min=%s max=%s\n", name, len(ds), ms(median(ds)), ms(slices.Min(ds)), ms(slices.Max(ds)))
	}
	fmt.Printf("bench-aws: %d route tables, %s injected into every AWS call, %d trials\n", len(tables), latency, trials)
	report("one ReplaceRoute", single)
	report("3 tables in parallel (switch)", parallel)
	report("3 tables one by one (sequential)", sequential)
	report("aws_vip start, prepared standby", start)
	report("aws_vip start, cold standby", cold)
	sw, seq, one := median(parallel), median(sequential), median(single)
	fmt.Printf("bench-aws: switch=%s sequential=%s ratio=%.2f\n", msNum(sw), msNum(seq), float64(sw)/float64(seq))
	verdict := "MET"
	if float64(sw) > 1.5*float64(one) {
		verdict = "NOT MET"
	}
	fmt.Printf("bench-aws: goal switch <= 1.5 x one call (%s ms): %s (%.2f x)\n", msNum(one), verdict, float64(sw)/float64(one))
	return nil
}

// otherENI returns an ENI of another instance than eni's.
func otherENI(w *awsemu.World, eni string) string {
	for _, in := range w.Instances {
		if len(in.ENIs) > 0 && in.ENIs[0] != eni {
			return in.ENIs[0]
		}
	}
	return eni
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return msNum(d) + " ms" }

func msNum(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }
