//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * heartbeat.c: Vigil's XDP heartbeat fast path, attached to every
 * interconnect interface.
 *
 * It speaks the wire format of dataplane/heartbeat (doc.go there is the
 * byte-by-byte reference):
 *
 *  - Responder: an authentic probe from a member on this interface's lane is
 *    copied to a ring buffer for the daemon and answered in place with
 *    XDP_TX: the reply carries flag bit 0 (made by the kernel), the
 *    responder's receive time and the daemon's liveness epoch. A probe whose
 *    tag does not verify is dropped.
 *  - Prober: an authentic reply to a probe the daemon registered as
 *    outstanding updates the per-(peer, lane) statistics with a kernel
 *    receive timestamp, then goes on to the daemon's socket.
 *
 * Everything else is passed at once. The tag is HMAC-SHA256 truncated to 16
 * bytes; the daemon precomputes HMAC's inner and outer SHA-256 states from
 * the derived key, so a tag costs the message blocks plus one outer block.
 */

#include "vigil.h"

/* Wire format sizes and offsets (dataplane/heartbeat/wire.go). */
#define HB_HDR 66
#define HB_TAG 16
#define HB_MAX_PAYLOAD 1024
#define HB_PROBE_MIN (HB_HDR + 2 + HB_TAG)	   /* 84 */
#define HB_PROBE_MAX (HB_PROBE_MIN + HB_MAX_PAYLOAD) /* 1108 */
#define HB_REPLY (HB_HDR + 24 + HB_TAG)		   /* 106 */
#define HB_REPLY_BODY (HB_REPLY - HB_TAG)	   /* 90 */
#define HB_MAX_BODY (HB_PROBE_MAX - HB_TAG)	   /* 1092 */
#define HB_MIN_PACKET (HB_HDR + HB_TAG)		   /* 82 */
#define HB_MAGIC 0x42484756			   /* "VGHB" read as a little-endian u32 */
#define HB_VERSION 1
#define HB_TYPE_PROBE 1
#define HB_TYPE_REPLY 2
#define HB_FLAG_KERNEL_REPLY 0x0001

#define OFF_TYPE 5
#define OFF_SENDER 6
#define OFF_LANE 7
#define OFF_FLAGS 8
#define OFF_CONFIG_HASH 10
#define OFF_NONCE 34
#define OFF_SENT_AT 58
#define OFF_PAYLOAD_LEN 66
#define OFF_ECHO_SENT_AT 66
#define OFF_RECEIVED_AT 74
#define OFF_EPOCH 82

/* Ethernet + IPv4 without options + UDP: where the heartbeat starts. */
#define L4_END (14 + 20 + 8)

/* Size of the scratch buffer the tag is computed in: the longest message
 * (1092 bytes) padded to whole SHA-256 blocks (1152), with room for the
 * bounded stores of the padding code. */
#define HB_BUF 1280

/* Counters, indexes of hb_counters. Keep in sync with Counters in
 * dataplane/xdpheartbeat. */
enum hb_counter {
	HB_CNT_ANSWERED = 0,	     /* probes answered with XDP_TX */
	HB_CNT_BAD_TAG,		     /* probes whose tag failed: dropped */
	HB_CNT_NON_MEMBER,	     /* heartbeats from an address that is no member: passed */
	HB_CNT_WRONG_LANE,	     /* lane or sender index not the member's on this lane: passed */
	HB_CNT_MALFORMED,	     /* heartbeat port, but not a well-formed packet: passed */
	HB_CNT_IP_OPTIONS,	     /* heartbeat port, IPv4 options: passed */
	HB_CNT_NOT_CONFIGURED,	     /* interface without a lane, or no configuration: passed */
	HB_CNT_RINGBUF_FULL,	     /* probe answered but not delivered to the daemon */
	HB_CNT_TX_ERROR,	     /* could not resize the packet: passed */
	HB_CNT_REPLY_RECORDED,	     /* replies recorded in hb_peer_lanes: passed */
	HB_CNT_REPLY_UNKNOWN_NONCE,  /* replies without an outstanding probe: passed */
	HB_CNT_REPLY_BAD_TAG,	     /* replies whose tag failed: passed */
	HB_CNT_REPLY_MISMATCH,	     /* nonce registered for another peer or lane: passed */
	HB_CNT_MAX,
};

/* hb_config: the single entry of the configuration map. The daemon writes it
 * whole before attaching, then only epoch and clock_offset_ns, through a
 * shared memory mapping (the map is BPF_F_MMAPABLE) with atomic stores. */
struct hb_config {
	__u32 inner[8];		/* SHA-256 state after the key ^ ipad block */
	__u32 outer[8];		/* SHA-256 state after the key ^ opad block */
	__u8 hdr[24];		/* our config hash (16) and incarnation (8, big-endian) */
	__u8 self;		/* our server index */
	__u8 ready;		/* nonzero once the daemon wrote the entry */
	__u8 pad[6];
	__u64 epoch;		/* the daemon's liveness epoch */
	__s64 clock_offset_ns;	/* CLOCK_REALTIME - CLOCK_MONOTONIC */
};

/* hb_member: where a peer's address belongs. */
struct hb_member {
	__u8 server;
	__u8 lane;
};

struct hb_nonce {
	__u8 b[16];
};

/* hb_outstanding: a probe the daemon sent and expects a reply to. */
struct hb_outstanding {
	__u64 sent_mono_ns;
	__u8 peer;
	__u8 lane;
	__u8 pad[6];
};

/* hb_peer_lane: what the prober side saw of one peer on one lane. Times are
 * CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns). */
struct hb_peer_lane {
	__u64 last_reply_mono_ns;
	__u64 rtt_ns;
	__u64 epoch;
	__u64 epoch_changed_mono_ns;
	__u64 replies;
	__u64 kernel_replies;
};

/* hb_probe_event: the header of a ring buffer record; the probe, len bytes
 * of UDP payload, follows it. */
struct hb_probe_event {
	__u32 len;
	__be32 saddr;
	__u64 rx_mono_ns;
	__be16 sport;
	__u8 lane;
	__u8 peer;
	__u32 pad;
};

/* hb_scratch: per-CPU working memory. ev and buf are contiguous, so one
 * ring buffer output sends the header and the probe. */
struct hb_scratch {
	struct hb_probe_event ev;
	__u8 buf[HB_BUF];
	__u8 obuf[64];
	__u32 st[8];
	__u32 w[64];
	__u64 tag[2];
};

/* hb_port: the heartbeat UDP port, set when the daemon loads the program. */
volatile const __u16 hb_port = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hb_config);
} hb_config SEC(".maps");

/* ifindex -> lane index of the interface. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} hb_ifaces SEC(".maps");

/* peer IPv4 address (network order) -> server and lane. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __be32);
	__type(value, struct hb_member);
} hb_members SEC(".maps");

/* nonce -> outstanding probe; LRU, so probes never answered age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct hb_nonce);
	__type(value, struct hb_outstanding);
} hb_outstanding SEC(".maps");

/* (peer << 8 | lane) -> statistics. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2048);
	__type(key, __u32);
	__type(value, struct hb_peer_lane);
} hb_peer_lanes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HB_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} hb_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hb_scratch);
} hb_scratch SEC(".maps");

/* Probes answered, for the daemon: hb_probe_event + the probe. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} hb_probes SEC(".maps");

static __always_inline void count(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&hb_counters, &i);

	if (v)
		*v += 1;
}

/* ---- SHA-256 ---------------------------------------------------------- */

/* BPF has no rotate instruction: a 32-bit rotate costs five. With the
 * word doubled into 64 bits (x:x), a right rotate by n is the low half of
 * one 64-bit right shift, so each sigma costs one doubling and one shift
 * per term. */
#define DUP(x) (((__u64)(x) << 32) | (__u64)(x))
#define BSIG0(x) ({ __u64 d_ = DUP(x); (__u32)((d_ >> 2) ^ (d_ >> 13) ^ (d_ >> 22)); })
#define BSIG1(x) ({ __u64 d_ = DUP(x); (__u32)((d_ >> 6) ^ (d_ >> 11) ^ (d_ >> 25)); })
#define SSIG0(x) ({ __u64 d_ = DUP(x); (__u32)((d_ >> 7) ^ (d_ >> 18) ^ (d_ >> 35)); })
#define SSIG1(x) ({ __u64 d_ = DUP(x); (__u32)((d_ >> 17) ^ (d_ >> 19) ^ (d_ >> 42)); })
#define CH(e, f, g) ((g) ^ ((e) & ((f) ^ (g))))
#define MAJ(a, b, c) (((a) & (b)) | ((c) & ((a) | (b))))

static const __u32 sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* SHA256_ROUND is one round with the working variables renamed instead of
 * moved: it updates d and h only. */
#define SHA256_ROUND(a, b, c, d, e, f, g, h, i)                             \
	do {                                                                \
		t1 = h + BSIG1(e) + CH(e, f, g) + sha256_k[i] + w[i];      \
		t2 = BSIG0(a) + MAJ(a, b, c);                               \
		d += t1;                                                    \
		h = t1 + t2;                                                \
	} while (0)

/* sha256_compress runs the SHA-256 compression function on state st and the
 * 64-byte block blk, with w (64 words of scratch memory) for the message
 * schedule. The rounds are unrolled eight at a time. */
static __noinline void sha256_compress(__u32 *st, const __u8 *blk, __u32 *w)
{
	__u32 a, b, c, d, e, f, g, h, t1, t2;
	int i;

#pragma clang loop unroll(full)
	for (i = 0; i < 16; i++)
		w[i] = bpf_ntohl(*(const __u32 *)(blk + 4 * i));
#pragma clang loop unroll_count(8)
	for (i = 16; i < 64; i++)
		w[i] = SSIG1(w[i - 2]) + w[i - 7] + SSIG0(w[i - 15]) + w[i - 16];

	a = st[0];
	b = st[1];
	c = st[2];
	d = st[3];
	e = st[4];
	f = st[5];
	g = st[6];
	h = st[7];

#pragma clang loop unroll(disable)
	for (i = 0; i < 64; i += 8) {
		SHA256_ROUND(a, b, c, d, e, f, g, h, i + 0);
		SHA256_ROUND(h, a, b, c, d, e, f, g, i + 1);
		SHA256_ROUND(g, h, a, b, c, d, e, f, i + 2);
		SHA256_ROUND(f, g, h, a, b, c, d, e, i + 3);
		SHA256_ROUND(e, f, g, h, a, b, c, d, i + 4);
		SHA256_ROUND(d, e, f, g, h, a, b, c, i + 5);
		SHA256_ROUND(c, d, e, f, g, h, a, b, i + 6);
		SHA256_ROUND(b, c, d, e, f, g, h, a, i + 7);
	}

	st[0] += a;
	st[1] += b;
	st[2] += c;
	st[3] += d;
	st[4] += e;
	st[5] += f;
	st[6] += g;
	st[7] += h;
}

/* hash_block_cb is the bpf_loop body: it compresses block idx of the
 * scratch buffer into the scratch state. */
static long hash_block_cb(__u32 idx, void *unused)
{
	__u32 zero = 0;
	struct hb_scratch *s = bpf_map_lookup_elem(&hb_scratch, &zero);
	__u32 off = idx << 6;

	if (!s || off > HB_BUF - 64)
		return 1;
	sha256_compress(s->st, s->buf + off, s->w);
	return 0;
}

/* hb_hmac computes the tag of the first len bytes of s->buf into s->tag
 * (the first 16 bytes of the digest, in wire order). It pads the message in
 * place, so s->buf[len:] is overwritten. Returns 0, or -1 on a length the
 * wire format cannot have. */
static __noinline int hb_hmac(struct hb_scratch *s, const struct hb_config *c, __u32 len)
{
	__u64 *o = (__u64 *)s->obuf;
	__u32 w, sh, end, last, nblocks, i, off;
	__u64 v;

	barrier_var(len);
	if (len > HB_MAX_BODY)
		return -1;

	/* SHA-256 padding: 0x80, zeros, the bit length of key block + message,
	 * big-endian, ending a block. The word holding byte len keeps the
	 * message bytes below it (little-endian: the low-order bytes). */
	w = len & ~7u;
	sh = (len & 7) * 8;
	v = *(__u64 *)(s->buf + w);
	v &= ((__u64)1 << sh) - 1;
	v |= (__u64)0x80 << sh;
	*(__u64 *)(s->buf + w) = v;

	end = (((len + 8) >> 6) + 1) << 6;
	last = end - 8; /* where the length goes */
	barrier_var(last);
	if (last > HB_BUF - 8)
		return -1;
#pragma clang loop unroll(full)
	for (i = 1; i <= 9; i++) {
		off = w + 8 * i;
		if (off >= last)
			break;
		*(__u64 *)(s->buf + off) = 0;
	}
	*(__u64 *)(s->buf + last) = bpf_cpu_to_be64((__u64)(64 + len) * 8);
	nblocks = end >> 6;

	/* Inner hash: the precomputed key ^ ipad state, then the message. */
	__builtin_memcpy(s->st, c->inner, sizeof(s->st));
	if (bpf_loop(nblocks, hash_block_cb, NULL, 0) != nblocks)
		return -1;

	/* Outer hash: key ^ opad state, then the 32-byte inner digest, padded
	 * to one block of total length 64 + 32 bytes (768 bits). */
	o[0] = (__u64)bpf_htonl(s->st[0]) | (__u64)bpf_htonl(s->st[1]) << 32;
	o[1] = (__u64)bpf_htonl(s->st[2]) | (__u64)bpf_htonl(s->st[3]) << 32;
	o[2] = (__u64)bpf_htonl(s->st[4]) | (__u64)bpf_htonl(s->st[5]) << 32;
	o[3] = (__u64)bpf_htonl(s->st[6]) | (__u64)bpf_htonl(s->st[7]) << 32;
	o[4] = 0x80;
	o[5] = 0;
	o[6] = 0;
	o[7] = bpf_cpu_to_be64(768);
	__builtin_memcpy(s->st, c->outer, sizeof(s->st));
	sha256_compress(s->st, s->obuf, s->w);

	s->tag[0] = (__u64)bpf_htonl(s->st[0]) | (__u64)bpf_htonl(s->st[1]) << 32;
	s->tag[1] = (__u64)bpf_htonl(s->st[2]) | (__u64)bpf_htonl(s->st[3]) << 32;
	return 0;
}

/* ---- packet helpers --------------------------------------------------- */

/* csum_reduce folds a one's complement sum of 16-bit words to 16 bits. */
static __always_inline __u32 csum_reduce(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

/* csum_fold returns the checksum field for a one's complement sum. */
static __always_inline __u16 csum_fold(__u64 sum)
{
	return ~csum_reduce(sum) & 0xffff;
}

static __always_inline void put_be64(__u8 *p, __u64 v)
{
	v = bpf_cpu_to_be64(v);
	__builtin_memcpy(p, &v, 8);
}

static __always_inline __u64 get_be64(const __u8 *p)
{
	__u64 v;

	__builtin_memcpy(&v, p, 8);
	return bpf_be64_to_cpu(v);
}

static __always_inline __u64 get_u64(const __u8 *p)
{
	__u64 v;

	__builtin_memcpy(&v, p, 8);
	return v;
}

static __always_inline void put_u64(__u8 *p, __u64 v)
{
	__builtin_memcpy(p, &v, 8);
}

/* ---- responder -------------------------------------------------------- */

/* hb_probe answers the probe of plen bytes at p from member m. */
static __always_inline int hb_probe(struct xdp_md *ctx, struct hb_config *c, const struct hb_member *m,
				    __u32 lane, __u32 plen, const __u8 *p)
{
	struct hb_scratch *s;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct udphdr *udp;
	void *data, *data_end;
	__u64 tag0, tag1, rx, tx, echo, sum;
	__u32 zero = 0, n, len, body, i;
	__u16 *w, port;
	__be32 addr;
	__u8 mac[ETH_ALEN];

	if (m->lane != lane || p[OFF_LANE] != m->lane || p[OFF_SENDER] != m->server) {
		count(HB_CNT_WRONG_LANE);
		return XDP_PASS;
	}
	n = (__u32)p[OFF_PAYLOAD_LEN] << 8 | p[OFF_PAYLOAD_LEN + 1];
	if (n > HB_MAX_PAYLOAD || plen != HB_PROBE_MIN + n) {
		count(HB_CNT_MALFORMED);
		return XDP_PASS;
	}
	rx = bpf_ktime_get_ns();

	s = bpf_map_lookup_elem(&hb_scratch, &zero);
	if (!s)
		return XDP_PASS;
	/* Bounds the verifier sees on the very register used: older verifiers
	 * (6.1) do not carry bounds across register copies, so the checks
	 * come after a barrier the compiler cannot see through. */
	len = plen;
	barrier_var(len);
	if (len < HB_PROBE_MIN || len > HB_PROBE_MAX)
		return XDP_PASS;
	if (bpf_xdp_load_bytes(ctx, L4_END, s->buf, len))
		return XDP_PASS;
	body = len - HB_TAG;
	barrier_var(body);
	if (body > HB_MAX_BODY)
		return XDP_PASS;
	tag0 = get_u64(s->buf + body);
	tag1 = get_u64(s->buf + body + 8);
	if (hb_hmac(s, c, body))
		return XDP_PASS;
	if ((s->tag[0] ^ tag0) | (s->tag[1] ^ tag1)) {
		count(HB_CNT_BAD_TAG);
		return XDP_DROP;
	}

	/* Resize first: if that fails the probe goes to the daemon's socket
	 * untouched, and the daemon answers it. */
	if (bpf_xdp_adjust_tail(ctx, (int)HB_REPLY - (int)len)) {
		count(HB_CNT_TX_ERROR);
		return XDP_PASS;
	}

	/* The probe, tag included, for the daemon. */
	put_u64(s->buf + body, tag0);
	put_u64(s->buf + body + 8, tag1);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + L4_END + HB_REPLY > data_end)
		return XDP_ABORTED;
	ip = data + 14;
	udp = data + 34;
	s->ev.len = len;
	s->ev.saddr = ip->saddr;
	s->ev.rx_mono_ns = rx;
	s->ev.sport = udp->source;
	s->ev.lane = m->lane;
	s->ev.peer = m->server;
	s->ev.pad = 0;
	if (bpf_ringbuf_output(&hb_probes, &s->ev, sizeof(s->ev) + len, 0))
		count(HB_CNT_RINGBUF_FULL);

	/* The reply, built over the probe: magic, version, lane, nonce and
	 * seq stay; the probe's send time moves to the echo field. */
	echo = get_u64(s->buf + OFF_SENT_AT);
	s->buf[OFF_TYPE] = HB_TYPE_REPLY;
	s->buf[OFF_SENDER] = c->self;
	s->buf[OFF_FLAGS] = HB_FLAG_KERNEL_REPLY >> 8;
	s->buf[OFF_FLAGS + 1] = HB_FLAG_KERNEL_REPLY & 0xff;
	__builtin_memcpy(s->buf + OFF_CONFIG_HASH, c->hdr, sizeof(c->hdr));
	tx = bpf_ktime_get_ns();
	put_be64(s->buf + OFF_SENT_AT, tx + *(volatile __s64 *)&c->clock_offset_ns);
	put_u64(s->buf + OFF_ECHO_SENT_AT, echo);
	put_be64(s->buf + OFF_RECEIVED_AT, rx + *(volatile __s64 *)&c->clock_offset_ns);
	put_be64(s->buf + OFF_EPOCH, *(volatile __u64 *)&c->epoch);
	if (hb_hmac(s, c, HB_REPLY_BODY))
		return XDP_ABORTED;
	put_u64(s->buf + HB_REPLY_BODY, s->tag[0]);
	put_u64(s->buf + HB_REPLY_BODY + 8, s->tag[1]);
	s->buf[HB_REPLY] = 0; /* checksum padding to a multiple of 4 */
	s->buf[HB_REPLY + 1] = 0;

	/* Headers: swap the addresses and ports, fix the lengths. */
	eth = data;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);

	addr = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = addr;
	ip->tot_len = bpf_htons(20 + 8 + HB_REPLY);
	ip->id = 0;
	ip->frag_off = bpf_htons(IP_DF);
	ip->ttl = 64;
	ip->check = 0;
	w = (__u16 *)ip;
	sum = 0;
#pragma clang loop unroll(full)
	for (i = 0; i < 10; i++)
		sum += w[i];
	ip->check = csum_fold(sum);

	port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	udp->len = bpf_htons(8 + HB_REPLY);
	udp->check = 0;

	/* UDP checksum: pseudo header and UDP header summed here, the
	 * payload (padded with two zero bytes) by bpf_csum_diff. */
	sum = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) + (ip->daddr >> 16) +
	      bpf_htons(IPPROTO_UDP) + bpf_htons(8 + HB_REPLY) + udp->source + udp->dest + udp->len;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)s->buf, HB_REPLY + 2, csum_reduce(sum));
	/* bpf_csum_diff returns a 32-bit partial sum; fold it. */
	sum = csum_fold(sum & 0xffffffff);
	udp->check = sum ? sum : 0xffff;

	if (bpf_xdp_store_bytes(ctx, L4_END, s->buf, HB_REPLY))
		return XDP_ABORTED;
	count(HB_CNT_ANSWERED);
	return XDP_TX;
}

/* ---- prober ----------------------------------------------------------- */

/* hb_reply records the reply of plen bytes at p from member m. */
static __always_inline int hb_reply(struct xdp_md *ctx, struct hb_config *c, const struct hb_member *m,
				    __u32 lane, __u32 plen, const __u8 *p)
{
	struct hb_outstanding *o;
	struct hb_peer_lane *pl;
	struct hb_scratch *s;
	struct hb_nonce nonce;
	__u64 tag0, tag1, rx, sent, epoch;
	__u32 zero = 0, key;
	__u8 flags;

	if (plen != HB_REPLY) {
		count(HB_CNT_MALFORMED);
		return XDP_PASS;
	}
	if (m->lane != lane || p[OFF_LANE] != m->lane || p[OFF_SENDER] != m->server) {
		count(HB_CNT_WRONG_LANE);
		return XDP_PASS;
	}
	__builtin_memcpy(nonce.b, p + OFF_NONCE, sizeof(nonce.b));
	o = bpf_map_lookup_elem(&hb_outstanding, &nonce);
	if (!o) {
		count(HB_CNT_REPLY_UNKNOWN_NONCE);
		return XDP_PASS;
	}
	if (o->peer != m->server || o->lane != m->lane) {
		count(HB_CNT_REPLY_MISMATCH);
		return XDP_PASS;
	}
	sent = o->sent_mono_ns;
	rx = bpf_ktime_get_ns();

	s = bpf_map_lookup_elem(&hb_scratch, &zero);
	if (!s)
		return XDP_PASS;
	if (bpf_xdp_load_bytes(ctx, L4_END, s->buf, HB_REPLY))
		return XDP_PASS;
	tag0 = get_u64(s->buf + HB_REPLY_BODY);
	tag1 = get_u64(s->buf + HB_REPLY_BODY + 8);
	if (hb_hmac(s, c, HB_REPLY_BODY))
		return XDP_PASS;
	if ((s->tag[0] ^ tag0) | (s->tag[1] ^ tag1)) {
		count(HB_CNT_REPLY_BAD_TAG);
		return XDP_PASS;
	}
	/* Consume the nonce; whoever deletes it records the reply. */
	if (bpf_map_delete_elem(&hb_outstanding, &nonce)) {
		count(HB_CNT_REPLY_UNKNOWN_NONCE);
		return XDP_PASS;
	}
	epoch = get_be64(s->buf + OFF_EPOCH);
	flags = s->buf[OFF_FLAGS + 1];

	key = (__u32)m->server << 8 | m->lane;
	/* The daemon creates an entry for every member when it loads us. */
	pl = bpf_map_lookup_elem(&hb_peer_lanes, &key);
	if (!pl)
		return XDP_PASS;
	if (pl->replies == 0 || pl->epoch != epoch) {
		pl->epoch = epoch;
		pl->epoch_changed_mono_ns = rx;
	}
	pl->last_reply_mono_ns = rx;
	pl->rtt_ns = rx > sent ? rx - sent : 0;
	__sync_fetch_and_add(&pl->replies, 1);
	if (flags & HB_FLAG_KERNEL_REPLY)
		__sync_fetch_and_add(&pl->kernel_replies, 1);
	count(HB_CNT_REPLY_RECORDED);
	return XDP_PASS;
}

/* ---- entry ------------------------------------------------------------ */

SEC("xdp")
int vigil_hb_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct hb_member *m;
	struct hb_config *c;
	struct iphdr *ip;
	struct udphdr *udp;
	__u32 zero = 0, ifindex, ulen, plen, *lane;
	__u8 *p;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	/* A fragment other than the first has no UDP header. */
	if (ip->frag_off & bpf_htons(IP_OFFSET))
		return XDP_PASS;
	if (ip->ihl != 5) {
		/* Options: let the daemon's socket have it, but count it if it
		 * is ours. */
		udp = (void *)ip + ip->ihl * 4;
		if (ip->ihl >= 5 && (void *)(udp + 1) <= data_end && udp->dest == bpf_htons(hb_port))
			count(HB_CNT_IP_OPTIONS);
		return XDP_PASS;
	}
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end || udp->dest != bpf_htons(hb_port) || hb_port == 0)
		return XDP_PASS;

	/* A heartbeat, or something sent to its port. */
	ulen = bpf_ntohs(udp->len);
	plen = ulen - 8;
	p = (void *)(udp + 1);
	if (ip->version != 4 || (ip->frag_off & bpf_htons(IP_MF)) || ulen < 8 ||
	    bpf_ntohs(ip->tot_len) != 20 + ulen || plen < HB_MIN_PACKET || plen > HB_PROBE_MAX ||
	    (void *)p + HB_PROBE_MIN > data_end || (void *)p + plen > data_end ||
	    *(__u32 *)p != HB_MAGIC || p[4] != HB_VERSION) {
		count(HB_CNT_MALFORMED);
		return XDP_PASS;
	}
	/* Do not answer what was sent to a group address. */
	if ((eth->h_dest[0] & 1) || (bpf_ntohl(ip->daddr) >> 28) >= 0xe) {
		count(HB_CNT_MALFORMED);
		return XDP_PASS;
	}

	c = bpf_map_lookup_elem(&hb_config, &zero);
	ifindex = ctx->ingress_ifindex;
	lane = bpf_map_lookup_elem(&hb_ifaces, &ifindex);
	if (!c || !c->ready || !lane) {
		count(HB_CNT_NOT_CONFIGURED);
		return XDP_PASS;
	}
	m = bpf_map_lookup_elem(&hb_members, &ip->saddr);
	if (!m) {
		count(HB_CNT_NON_MEMBER);
		return XDP_PASS;
	}
	switch (p[OFF_TYPE]) {
	case HB_TYPE_PROBE:
		return hb_probe(ctx, c, m, *lane, plen, p);
	case HB_TYPE_REPLY:
		return hb_reply(ctx, c, m, *lane, plen, p);
	}
	count(HB_CNT_MALFORMED);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
