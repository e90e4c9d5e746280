/* Shared between the eBPF reply filter (bpf/reply_filter.bpf.c) and the user-space loader
 * (Sources/CFastTrace/filter.c): the layout of the single `ft_config` map entry and the indices of
 * the `ft_stats` counters. Both sides compile this one definition, so they cannot disagree. */
#ifndef FASTTRACE_REPLY_FILTER_H
#define FASTTRACE_REPLY_FILTER_H

#ifdef __bpf__
#include <linux/types.h>
typedef __u16 ft_u16;
typedef __u32 ft_u32;
#else
#include <stdint.h>
typedef uint16_t ft_u16;
typedef uint32_t ft_u32;
#endif

/* Probe kinds the filter accepts replies for (`ft_config.flags`): one of TCP, UDP and ICMP echo (the
 * first set wins, in that order), over both families (ICMP means ICMPv6 over IPv6); the IPv6 bit is
 * reserved. For ICMP echo, `sport_lo..sport_hi` are the probes' identifiers. */
#define FT_PROBE_TCP (1u << 0)
#define FT_PROBE_UDP (1u << 1)
#define FT_PROBE_ICMP (1u << 2)
#define FT_PROBE_IPV6 (1u << 3) /* reserved */

/* Bytes kept of an accepted packet when `snaplen` is 0: enough for a 60-byte IPv4 header, 8 bytes
 * of ICMP, a 60-byte quoted IPv4 header and a full TCP header, with room for RFC 4884 extensions; over
 * IPv6, for the 40-byte headers, the quoted payload that carries UDP's and ICMPv6's word, and an
 * extension structure after RFC 4884's 128-byte original datagram. */
#define FT_DEFAULT_SNAPLEN 256u

/* The one entry (key 0) of the BPF_MAP_TYPE_ARRAY `ft_config`. */
struct ft_config {
    ft_u16 sport_lo; /* probe source ports, inclusive range, host byte order */
    ft_u16 sport_hi;
    ft_u32 flags;    /* FT_PROBE_* */
    ft_u32 snaplen;  /* bytes to keep of an accepted packet; 0 means FT_DEFAULT_SNAPLEN */
    ft_u32 reserved; /* zero */
};
_Static_assert(sizeof(struct ft_config) == 16, "ft_config layout is shared with user space");

/* Indices into the per-CPU BPF_MAP_TYPE_ARRAY `ft_stats` (one __u64 per CPU each). */
enum ft_stat {
    FT_STAT_KEPT = 0,
    FT_STAT_DROPPED = 1,
    FT_STAT_COUNT = 2,
};

#endif
