//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * vipacct.c: per-VIP traffic accounting on TC ingress (tcx), for Vigil's
 * floating and AWS virtual IPs.
 *
 * For every IPv4 packet whose destination is a VIP in vip_stats, it counts
 * packets (GSO segments) and bytes, per CPU. When the daemon has armed the
 * VIP (it became its owner), the first packet after arming records its
 * monotonic time in vip_arm: the proof that traffic reached the new owner.
 * It never drops nor redirects: it returns TC_ACT_UNSPEC (tcx: next).
 */

#include "vigil.h"

/* vip_counts: traffic to one VIP on one CPU. */
struct vip_counts {
	__u64 packets;
	__u64 bytes;
};

/* vip_arm: the arming state of one VIP. The daemon writes armed_at_mono_ns
 * (and zeroes first_packet_mono_ns) when it arms; the program sets
 * first_packet_mono_ns, once. */
struct vip_arm {
	__u64 armed_at_mono_ns;
	__u64 first_packet_mono_ns;
};

/* VIP (IPv4, network order) -> per-CPU counts. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 256);
	__type(key, __be32);
	__type(value, struct vip_counts);
} vip_stats SEC(".maps");

/* VIP -> arming state. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __be32);
	__type(value, struct vip_arm);
} vip_arm SEC(".maps");

SEC("tc")
int vigil_vip_acct(struct __sk_buff *skb)
{
	struct vip_counts *c;
	struct vip_arm *a;
	__be32 daddr;
	__u32 segs;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;
	/* The destination address, 16 bytes into the IPv4 header, whatever
	 * its options and however the packet is laid out. */
	if (bpf_skb_load_bytes(skb, 14 + 16, &daddr, sizeof(daddr)))
		return TC_ACT_UNSPEC;
	c = bpf_map_lookup_elem(&vip_stats, &daddr);
	if (!c)
		return TC_ACT_UNSPEC;
	/* A GRO or GSO packet stands for gso_segs packets on the wire. */
	segs = skb->gso_segs;
	c->packets += segs ? segs : 1;
	c->bytes += skb->len;

	a = bpf_map_lookup_elem(&vip_arm, &daddr);
	if (a && a->armed_at_mono_ns && !a->first_packet_mono_ns)
		__sync_val_compare_and_swap(&a->first_packet_mono_ns, 0, bpf_ktime_get_ns());
	return TC_ACT_UNSPEC;
}

char _license[] SEC("license") = "GPL";
