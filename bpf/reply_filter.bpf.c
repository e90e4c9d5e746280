// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* fasttrace reply filter: a socket filter for the AF_PACKET SOCK_DGRAM receive ring (bound to
 * ETH_P_ALL, so offset 0 is the network header: IPv4 or IPv6 as skb->protocol says). The kernel
 * copies into the ring only what this returns non-zero for, so the ring carries replies to our probes
 * and nothing else, over either family (ICMPv6 where ICMP is named, its types 3, 1, 129 and 128 for
 * time exceeded, unreachable, echo reply and echo request):
 *   - ICMP time exceeded / destination unreachable quoting a header of the probes' protocol (TCP or
 *     UDP, as `ft_config.flags` says) whose source port is ours;
 *   - for TCP probes, TCP SYN-ACK or RST addressed to one of our source ports;
 *   - for UDP probes, UDP addressed to one of our source ports (a service's answer);
 *   - for ICMP echo probes, echo replies carrying one of our identifiers, and errors quoting an echo
 *     request that carries one (where a transport header has its source port, the identifier is 4
 *     bytes in).
 * Our own outgoing probes, fragments after the first, and all other traffic are dropped.
 * The return value is the snap length (bytes kept); 0 drops the packet. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "reply_filter.h"

#define ICMP_TIME_EXCEEDED 11
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10
#define ICMP_HEADER_LEN 8
#define ICMP6_DST_UNREACH 1
#define ICMP6_TIME_EXCEEDED 3
#define ICMP6_ECHO_REQUEST 128
#define ICMP6_ECHO_REPLY 129
#define IPV6_HEADER_LEN 40
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST 60
#define NEXTHDR_ICMPV6 58

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct ft_config);
} ft_config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, FT_STAT_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} ft_stats SEC(".maps");

static __always_inline void count(__u32 stat)
{
    __u64 *value = bpf_map_lookup_elem(&ft_stats, &stat);
    if (value)
        *value += 1; /* per-CPU: no other writer */
}

static __always_inline int in_range(__u16 port, const struct ft_config *cfg)
{
    return port >= cfg->sport_lo && port <= cfg->sport_hi;
}

/* Reads the IPv4 header at `off`: returns its length (20..60) and its protocol, or -1 if it is not
 * IPv4, is malformed, or is a fragment other than the first (which carries no transport header). */
static __always_inline int ipv4_header(struct __sk_buff *skb, __u32 off, __u8 *proto)
{
    __u8 ip[10];
    if (bpf_skb_load_bytes(skb, off, ip, sizeof(ip)) < 0)
        return -1;
    if ((ip[0] >> 4) != 4)
        return -1;
    int ihl = (ip[0] & 0x0f) * 4;
    if (ihl < 20)
        return -1;
    if ((((__u16)(ip[6] & 0x1f)) << 8 | ip[7]) != 0) /* fragment offset */
        return -1;
    *proto = ip[9];
    return ihl;
}

/* Reads the IPv6 header at `off` and walks up to three extension headers (hop-by-hop, routing,
 * destination options, or a first fragment): returns where the upper-layer header starts and its
 * protocol, or -1 if it is not IPv6, is cut short, or is a fragment other than the first. */
static __always_inline int ipv6_header(struct __sk_buff *skb, __u32 off, __u8 *proto)
{
    __u8 ip[8];
    if (bpf_skb_load_bytes(skb, off, ip, sizeof(ip)) < 0)
        return -1;
    if ((ip[0] >> 4) != 6)
        return -1;
    __u8 next = ip[6];
    __u32 at = off + IPV6_HEADER_LEN;
#pragma unroll
    for (int i = 0; i < 3; i++) {
        __u8 ext[4];
        if (next == NEXTHDR_HOP || next == NEXTHDR_ROUTING || next == NEXTHDR_DEST) {
            if (bpf_skb_load_bytes(skb, at, ext, 2) < 0)
                return -1;
            next = ext[0];
            at += ((__u32)ext[1] + 1) * 8;
        } else if (next == NEXTHDR_FRAGMENT) {
            if (bpf_skb_load_bytes(skb, at, ext, 4) < 0)
                return -1;
            if (((((__u16)ext[2]) << 8 | ext[3]) & 0xfff8) != 0) /* fragment offset */
                return -1;
            next = ext[0];
            at += 8;
        } else {
            break;
        }
    }
    if (next == NEXTHDR_HOP || next == NEXTHDR_ROUTING || next == NEXTHDR_DEST || next == NEXTHDR_FRAGMENT)
        return -1;
    *proto = next;
    return (int)(at - off);
}

/* The IPv6 twin of `accept`: the same rules, with ICMPv6's types and 40-byte quoted headers. */
static __always_inline int accept6(struct __sk_buff *skb, const struct ft_config *cfg, __u8 probe_proto)
{
    __u8 proto;
    int hlen = ipv6_header(skb, 0, &proto);
    if (hlen < 0)
        return 0;
    if (probe_proto == IPPROTO_ICMP)
        probe_proto = NEXTHDR_ICMPV6;

    if (proto == IPPROTO_UDP && probe_proto == IPPROTO_UDP) {
        __u8 ports[4];
        if (bpf_skb_load_bytes(skb, hlen, ports, sizeof(ports)) < 0)
            return 0;
        return in_range(((__u16)ports[2] << 8) | ports[3], cfg);
    }
    if (proto == IPPROTO_TCP && probe_proto == IPPROTO_TCP) {
        __u8 tcp[14];
        if (bpf_skb_load_bytes(skb, hlen, tcp, sizeof(tcp)) < 0)
            return 0;
        __u16 dport = ((__u16)tcp[2] << 8) | tcp[3];
        __u8 flags = tcp[13];
        int synack = (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == (TCP_FLAG_SYN | TCP_FLAG_ACK);
        int rst = (flags & TCP_FLAG_RST) != 0;
        return (synack || rst) && in_range(dport, cfg);
    }
    if (proto != NEXTHDR_ICMPV6)
        return 0;
    __u8 head[8];
    if (bpf_skb_load_bytes(skb, hlen, head, sizeof(head)) < 0)
        return 0;
    __u8 type = head[0];
    if (type == ICMP6_ECHO_REPLY && probe_proto == NEXTHDR_ICMPV6)
        return in_range(((__u16)head[4] << 8) | head[5], cfg);
    if (type != ICMP6_TIME_EXCEEDED && type != ICMP6_DST_UNREACH)
        return 0;
    __u32 quoted = hlen + ICMP_HEADER_LEN;
    __u8 qproto;
    int qlen = ipv6_header(skb, quoted, &qproto);
    if (qlen < 0 || qproto != probe_proto)
        return 0;
    if (probe_proto == NEXTHDR_ICMPV6) {
        __u8 echo[6];
        if (bpf_skb_load_bytes(skb, quoted + qlen, echo, sizeof(echo)) < 0)
            return 0;
        return echo[0] == ICMP6_ECHO_REQUEST && in_range(((__u16)echo[4] << 8) | echo[5], cfg);
    }
    __u8 sport[2];
    if (bpf_skb_load_bytes(skb, quoted + qlen, sport, sizeof(sport)) < 0)
        return 0;
    return in_range(((__u16)sport[0] << 8) | sport[1], cfg);
}

static __always_inline int accept(struct __sk_buff *skb, const struct ft_config *cfg)
{
    __u8 probe_proto;
    if (cfg->flags & FT_PROBE_TCP)
        probe_proto = IPPROTO_TCP;
    else if (cfg->flags & FT_PROBE_UDP)
        probe_proto = IPPROTO_UDP;
    else if (cfg->flags & FT_PROBE_ICMP)
        probe_proto = IPPROTO_ICMP;
    else
        return 0;
    if (skb->protocol == bpf_htons(ETH_P_IPV6))
        return accept6(skb, cfg, probe_proto);
    __u8 proto;
    int ihl = ipv4_header(skb, 0, &proto);
    if (ihl < 0)
        return 0;

    if (proto == IPPROTO_UDP && probe_proto == IPPROTO_UDP) {
        __u8 ports[4];
        if (bpf_skb_load_bytes(skb, ihl, ports, sizeof(ports)) < 0)
            return 0;
        return in_range(((__u16)ports[2] << 8) | ports[3], cfg);
    }

    if (proto == IPPROTO_TCP && probe_proto == IPPROTO_TCP) {
        __u8 tcp[14]; /* ports, sequence, acknowledgement, offset, flags */
        if (bpf_skb_load_bytes(skb, ihl, tcp, sizeof(tcp)) < 0)
            return 0;
        __u16 dport = ((__u16)tcp[2] << 8) | tcp[3];
        __u8 flags = tcp[13];
        int synack = (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == (TCP_FLAG_SYN | TCP_FLAG_ACK);
        int rst = (flags & TCP_FLAG_RST) != 0;
        return (synack || rst) && in_range(dport, cfg);
    }

    if (proto == IPPROTO_ICMP) {
        __u8 head[8]; /* type, code, checksum, identifier, sequence */
        if (bpf_skb_load_bytes(skb, ihl, head, sizeof(head)) < 0)
            return 0;
        __u8 type = head[0];
        if (type == ICMP_ECHOREPLY && probe_proto == IPPROTO_ICMP)
            return in_range(((__u16)head[4] << 8) | head[5], cfg);
        if (type != ICMP_TIME_EXCEEDED && type != ICMP_DEST_UNREACH)
            return 0;
        __u32 quoted = ihl + ICMP_HEADER_LEN;
        __u8 qproto;
        int qihl = ipv4_header(skb, quoted, &qproto);
        if (qihl < 0 || qproto != probe_proto)
            return 0;
        if (probe_proto == IPPROTO_ICMP) {
            __u8 echo[6]; /* quoted type, code, checksum, identifier */
            if (bpf_skb_load_bytes(skb, quoted + qihl, echo, sizeof(echo)) < 0)
                return 0;
            return echo[0] == ICMP_ECHO && in_range(((__u16)echo[4] << 8) | echo[5], cfg);
        }
        __u8 sport[2];
        if (bpf_skb_load_bytes(skb, quoted + qihl, sport, sizeof(sport)) < 0)
            return 0;
        return in_range(((__u16)sport[0] << 8) | sport[1], cfg);
    }
    return 0;
}

SEC("socket")
int ft_reply_filter(struct __sk_buff *skb)
{
    __u32 key = 0;
    const struct ft_config *cfg = bpf_map_lookup_elem(&ft_config, &key);
    if (!cfg || skb->pkt_type == PACKET_OUTGOING
        || (skb->protocol != bpf_htons(ETH_P_IP) && skb->protocol != bpf_htons(ETH_P_IPV6))) {
        count(FT_STAT_DROPPED);
        return 0;
    }
    if (!accept(skb, cfg)) {
        count(FT_STAT_DROPPED);
        return 0;
    }
    count(FT_STAT_KEPT);
    return cfg->snaplen ? cfg->snaplen : FT_DEFAULT_SNAPLEN;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
