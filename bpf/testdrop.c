//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * testdrop.c: a TC program that drops every packet, for tests that need an
 * interface to lose its link without netem (internal/bpftest.DropAll).
 */

#include "vigil.h"

SEC("tc")
int bpftest_drop(struct __sk_buff *skb)
{
	return TC_ACT_SHOT;
}

char _license[] SEC("license") = "GPL";
