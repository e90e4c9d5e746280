/* One netlink dump each of the main-table routes and the addresses (IPv4 or IPv6), through libmnl, copied
 * into flat arrays the Swift side reads. Lookups (longest-prefix match) happen in Swift over the
 * copy, so tens of thousands of targets cost one dump, not one round trip each. */
#include "CFastTrace.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>

struct route_ctx {
    struct cfasttrace_route *out;
    size_t capacity;
    size_t count;
};

struct address_ctx {
    struct cfasttrace_address *out;
    size_t capacity;
    size_t count;
};

/* An address attribute of `family` into `out` (16 bytes; an IPv4 address in the first 4), network order. */
static void attr_address(const struct nlattr *attr, int family, uint8_t out[16])
{
    size_t n = family == AF_INET6 ? 16 : 4;
    if (mnl_attr_get_payload_len(attr) >= n)
        memcpy(out, mnl_attr_get_payload(attr), n);
}

/* The first 4 bytes of `address` as a host-order IPv4 address. */
static uint32_t ipv4_of(const uint8_t address[16])
{
    uint32_t be;
    memcpy(&be, address, 4);
    return ntohl(be);
}

/* Reads one RTM_NEWROUTE of `family` into `r` (the IPv6 layout; IPv4 addresses in the first 4 bytes).
 * Returns 1 for a main-table route of that family, 0 for anything else. */
static int parse_route(const struct nlmsghdr *nlh, int family, struct cfasttrace_route6 *r)
{
    const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
    if (rtm->rtm_family != family)
        return 0;
    memset(r, 0, sizeof(*r));
    r->dst_len = rtm->rtm_dst_len;
    r->type = rtm->rtm_type;
    r->nexthops = 1;
    uint32_t table = rtm->rtm_table;

    const struct nlattr *attr;
    mnl_attr_for_each(attr, nlh, sizeof(*rtm)) {
        switch (mnl_attr_get_type(attr)) {
        case RTA_TABLE:
            if (mnl_attr_get_payload_len(attr) >= 4)
                table = mnl_attr_get_u32(attr);
            break;
        case RTA_DST:
            attr_address(attr, family, r->dst);
            break;
        case RTA_OIF:
            if (mnl_attr_get_payload_len(attr) >= 4)
                r->oif = (int32_t)mnl_attr_get_u32(attr);
            break;
        case RTA_GATEWAY:
            attr_address(attr, family, r->gateway);
            break;
        case RTA_PREFSRC:
            attr_address(attr, family, r->prefsrc);
            break;
        case RTA_PRIORITY:
            if (mnl_attr_get_payload_len(attr) >= 4)
                r->priority = mnl_attr_get_u32(attr);
            break;
        case RTA_MULTIPATH: {
            /* A packed list of struct rtnexthop, each followed by its own attributes. */
            const unsigned char *p = mnl_attr_get_payload(attr);
            size_t left = mnl_attr_get_payload_len(attr);
            uint16_t n = 0;
            while (left >= sizeof(struct rtnexthop) && n < UINT16_MAX) {
                const struct rtnexthop *nh = (const struct rtnexthop *)p;
                if (nh->rtnh_len < sizeof(*nh) || nh->rtnh_len > left)
                    break;
                if (n == 0) {
                    r->oif = nh->rtnh_ifindex;
                    /* Nested attributes after the rtnexthop header. */
                    const unsigned char *ap = p + RTNH_ALIGN(sizeof(*nh));
                    size_t aleft = nh->rtnh_len > RTNH_ALIGN(sizeof(*nh)) ? nh->rtnh_len - RTNH_ALIGN(sizeof(*nh)) : 0;
                    while (aleft >= sizeof(struct nlattr)) {
                        const struct nlattr *na = (const struct nlattr *)ap;
                        if (na->nla_len < sizeof(*na) || na->nla_len > aleft)
                            break;
                        if ((na->nla_type & NLA_TYPE_MASK) == RTA_GATEWAY)
                            attr_address(na, family, r->gateway);
                        size_t step = MNL_ALIGN(na->nla_len);
                        if (step >= aleft)
                            break;
                        ap += step;
                        aleft -= step;
                    }
                }
                n++;
                size_t step = RTNH_ALIGN(nh->rtnh_len);
                if (step >= left)
                    break;
                p += step;
                left -= step;
            }
            if (n > 0)
                r->nexthops = n;
            break;
        }
        default:
            break;
        }
    }
    return table == RT_TABLE_MAIN;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
    struct route_ctx *ctx = data;
    struct cfasttrace_route6 parsed;
    if (!parse_route(nlh, AF_INET, &parsed))
        return MNL_CB_OK;
    struct cfasttrace_route r = {
        .dst = ipv4_of(parsed.dst), .dst_len = parsed.dst_len, .type = parsed.type, .nexthops = parsed.nexthops,
        .oif = parsed.oif, .gateway = ipv4_of(parsed.gateway), .prefsrc = ipv4_of(parsed.prefsrc),
        .priority = parsed.priority,
    };
    if (ctx->count < ctx->capacity)
        ctx->out[ctx->count] = r;
    ctx->count++;
    return MNL_CB_OK;
}

/* Reads one RTM_NEWADDR of `family` into `a` (the IPv6 layout; an IPv4 address in the first 4 bytes, its
 * IFA_LOCAL preferred: on a point-to-point link IFA_ADDRESS is the peer's). Returns 1 when it is that family. */
static int parse_address(const struct nlmsghdr *nlh, int family, struct cfasttrace_address6 *a)
{
    const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
    if (ifa->ifa_family != family)
        return 0;
    memset(a, 0, sizeof(*a));
    a->ifindex = (int32_t)ifa->ifa_index;
    a->prefixlen = ifa->ifa_prefixlen;
    a->scope = ifa->ifa_scope;
    a->flags = ifa->ifa_flags;
    uint8_t local[16] = {0};
    int has_local = 0;
    const struct nlattr *attr;
    mnl_attr_for_each(attr, nlh, sizeof(*ifa)) {
        switch (mnl_attr_get_type(attr)) {
        case IFA_LOCAL:
            attr_address(attr, family, local);
            has_local = family == AF_INET && ipv4_of(local) != 0;
            break;
        case IFA_ADDRESS:
            attr_address(attr, family, a->address);
            break;
        case IFA_FLAGS: /* the full 32-bit flags, beyond ifa_flags' 8 */
            if (mnl_attr_get_payload_len(attr) >= 4)
                a->flags = mnl_attr_get_u32(attr);
            break;
        default:
            break;
        }
    }
    if (has_local)
        memcpy(a->address, local, 4);
    return 1;
}

static int address_cb(const struct nlmsghdr *nlh, void *data)
{
    struct address_ctx *ctx = data;
    struct cfasttrace_address6 parsed;
    if (!parse_address(nlh, AF_INET, &parsed))
        return MNL_CB_OK;
    struct cfasttrace_address a;
    memset(&a, 0, sizeof(a));
    a.ifindex = parsed.ifindex;
    a.prefixlen = parsed.prefixlen;
    a.address = ipv4_of(parsed.address);
    if (ctx->count < ctx->capacity)
        ctx->out[ctx->count] = a;
    ctx->count++;
    return MNL_CB_OK;
}

/* Sends one request on netlink `bus` (`type`, `flags` beside NLM_F_REQUEST, `payload` after the header) and runs `cb`
 * over every answer until the callbacks say stop: NLMSG_DONE for a dump (NLM_F_DUMP), the ACK for a
 * one-message request (NLM_F_ACK: without it nothing would end the answer, see the platform notes).
 * Returns 0 or -errno. */
static int request(int bus, uint16_t type, uint16_t flags, const void *payload, size_t payload_len, mnl_cb_t cb,
                   void *data)
{
    char *buf = malloc(MNL_SOCKET_BUFFER_SIZE);
    if (buf == NULL)
        return -ENOMEM;
    int rc = 0;
    struct mnl_socket *nl = mnl_socket_open(bus);
    if (nl == NULL) {
        rc = -errno;
        goto out;
    }
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        rc = -errno;
        goto out_close;
    }
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    uint32_t seq = (uint32_t)time(NULL);
    nlh->nlmsg_seq = seq;
    void *p = mnl_nlmsg_put_extra_header(nlh, payload_len);
    memcpy(p, payload, payload_len);
    unsigned int portid = mnl_socket_get_portid(nl);

    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
        rc = -errno;
        goto out_close;
    }
    for (int rounds = 0; rounds < 1000000; rounds++) { /* bounded; an answer ends long before */
        ssize_t n = mnl_socket_recvfrom(nl, buf, MNL_SOCKET_BUFFER_SIZE);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        errno = 0;
        int r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
        if (r == MNL_CB_ERROR) {
            rc = errno ? -errno : -EIO;
            break;
        }
        if (r == MNL_CB_STOP) /* NLMSG_DONE, or the ACK */
            break;
    }
out_close:
    mnl_socket_close(nl);
out:
    free(buf);
    return rc;
}

/* A dump (`type`, family in `payload`): ends with NLMSG_DONE, so no NLM_F_ACK is needed. */
static int dump(uint16_t type, const void *payload, size_t payload_len, mnl_cb_t cb, void *data)
{
    return request(NETLINK_ROUTE, type, NLM_F_DUMP, payload, payload_len, cb, data);
}

int CFastTrace_dump_routes(struct cfasttrace_route *out, size_t capacity)
{
    struct rtmsg rtm;
    memset(&rtm, 0, sizeof(rtm));
    rtm.rtm_family = AF_INET;
    struct route_ctx ctx = {out, capacity, 0};
    int rc = dump(RTM_GETROUTE, &rtm, sizeof(rtm), route_cb, &ctx);
    if (rc < 0)
        return rc;
    return ctx.count > INT32_MAX ? INT32_MAX : (int)ctx.count;
}

int CFastTrace_dump_addresses(struct cfasttrace_address *out, size_t capacity)
{
    struct ifaddrmsg ifa;
    memset(&ifa, 0, sizeof(ifa));
    ifa.ifa_family = AF_INET;
    struct address_ctx ctx = {out, capacity, 0};
    int rc = dump(RTM_GETADDR, &ifa, sizeof(ifa), address_cb, &ctx);
    if (rc < 0)
        return rc;
    return ctx.count > INT32_MAX ? INT32_MAX : (int)ctx.count;
}

/* ---- IPv6: the same dumps for AF_INET6 ---- */

struct route6_ctx {
    struct cfasttrace_route6 *out;
    size_t capacity;
    size_t count;
};

struct address6_ctx {
    struct cfasttrace_address6 *out;
    size_t capacity;
    size_t count;
};

static int route6_cb(const struct nlmsghdr *nlh, void *data)
{
    struct route6_ctx *ctx = data;
    struct cfasttrace_route6 r;
    if (!parse_route(nlh, AF_INET6, &r))
        return MNL_CB_OK;
    if (ctx->count < ctx->capacity)
        ctx->out[ctx->count] = r;
    ctx->count++;
    return MNL_CB_OK;
}

static int address6_cb(const struct nlmsghdr *nlh, void *data)
{
    struct address6_ctx *ctx = data;
    struct cfasttrace_address6 a;
    if (!parse_address(nlh, AF_INET6, &a))
        return MNL_CB_OK;
    if (ctx->count < ctx->capacity)
        ctx->out[ctx->count] = a;
    ctx->count++;
    return MNL_CB_OK;
}

int CFastTrace_dump_routes6(struct cfasttrace_route6 *out, size_t capacity)
{
    struct rtmsg rtm;
    memset(&rtm, 0, sizeof(rtm));
    rtm.rtm_family = AF_INET6;
    struct route6_ctx ctx = {out, capacity, 0};
    int rc = dump(RTM_GETROUTE, &rtm, sizeof(rtm), route6_cb, &ctx);
    if (rc < 0)
        return rc;
    return ctx.count > INT32_MAX ? INT32_MAX : (int)ctx.count;
}

int CFastTrace_dump_addresses6(struct cfasttrace_address6 *out, size_t capacity)
{
    struct ifaddrmsg ifa;
    memset(&ifa, 0, sizeof(ifa));
    ifa.ifa_family = AF_INET6;
    struct address6_ctx ctx = {out, capacity, 0};
    int rc = dump(RTM_GETADDR, &ifa, sizeof(ifa), address6_cb, &ctx);
    if (rc < 0)
        return rc;
    return ctx.count > INT32_MAX ? INT32_MAX : (int)ctx.count;
}

/* ---- The transmit ring's Ethernet headers: the egress interface and its IPv4 and IPv6 neighbours ---- */

#include <linux/if_link.h>
#include <linux/neighbour.h>

struct link_ctx {
    int ifindex;
    struct cfasttrace_link *out;
    int found;
};

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
    struct link_ctx *ctx = data;
    if (nlh->nlmsg_type != RTM_NEWLINK)
        return MNL_CB_OK;
    const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
    if (ifi->ifi_index != ctx->ifindex)
        return MNL_CB_OK;
    struct cfasttrace_link *l = ctx->out;
    memset(l, 0, sizeof(*l));
    l->type = ifi->ifi_type;
    l->flags = ifi->ifi_flags;
    const struct nlattr *attr;
    mnl_attr_for_each(attr, nlh, sizeof(*ifi)) {
        switch (mnl_attr_get_type(attr)) {
        case IFLA_MTU:
            if (mnl_attr_get_payload_len(attr) >= 4)
                l->mtu = mnl_attr_get_u32(attr);
            break;
        case IFLA_ADDRESS: {
            size_t n = mnl_attr_get_payload_len(attr);
            if (n > sizeof(l->address))
                n = sizeof(l->address);
            memcpy(l->address, mnl_attr_get_payload(attr), n);
            l->address_len = (uint8_t)n;
            break;
        }
        default:
            break;
        }
    }
    ctx->found = 1;
    return MNL_CB_OK;
}

struct neighbour_ctx {
    int ifindex;
    int family; /* AF_INET, AF_INET6, or AF_UNSPEC for both */
    struct cfasttrace_neighbour *out;
    size_t capacity;
    size_t count;
};

/* Reads one RTM_NEWNEIGH into `n` (either family: the address in the first 4 or all 16 bytes). Returns 1
 * for an IPv4 or IPv6 neighbour of `ifindex` with a destination, 0 for anything else. */
static int parse_neighbour(const struct nlmsghdr *nlh, int ifindex, struct cfasttrace_neighbour *n)
{
    const struct ndmsg *ndm = mnl_nlmsg_get_payload(nlh);
    if ((ndm->ndm_family != AF_INET && ndm->ndm_family != AF_INET6) || ndm->ndm_ifindex != ifindex)
        return 0;
    memset(n, 0, sizeof(*n));
    n->family = ndm->ndm_family;
    n->state = ndm->ndm_state;
    size_t address_len = ndm->ndm_family == AF_INET6 ? 16 : 4;
    int has_dst = 0;
    const struct nlattr *attr;
    mnl_attr_for_each(attr, nlh, sizeof(*ndm)) {
        switch (mnl_attr_get_type(attr)) {
        case NDA_DST:
            if (mnl_attr_get_payload_len(attr) == address_len) {
                attr_address(attr, ndm->ndm_family, n->address);
                has_dst = 1;
            }
            break;
        case NDA_LLADDR: {
            size_t len = mnl_attr_get_payload_len(attr);
            if (len <= sizeof(n->lladdr)) {
                memcpy(n->lladdr, mnl_attr_get_payload(attr), len);
                n->lladdr_len = (uint8_t)len;
            }
            break;
        }
        default:
            break;
        }
    }
    return has_dst;
}

static int neighbour_cb(const struct nlmsghdr *nlh, void *data)
{
    struct neighbour_ctx *ctx = data;
    struct cfasttrace_neighbour n;
    if (!parse_neighbour(nlh, ctx->ifindex, &n) || (ctx->family != AF_UNSPEC && n.family != ctx->family))
        return MNL_CB_OK;
    if (ctx->count < ctx->capacity)
        ctx->out[ctx->count] = n;
    ctx->count++;
    return MNL_CB_OK;
}

int CFastTrace_link_info(int ifindex, struct cfasttrace_link *out)
{
    struct ifinfomsg ifi;
    memset(&ifi, 0, sizeof(ifi));
    ifi.ifi_family = AF_UNSPEC;
    ifi.ifi_index = ifindex;
    struct link_ctx ctx = {ifindex, out, 0};
    /* Not a dump: one message, ended by the ACK. */
    int rc = request(NETLINK_ROUTE, RTM_GETLINK, NLM_F_ACK, &ifi, sizeof(ifi), link_cb, &ctx);
    if (rc == 0 && !ctx.found)
        rc = -ENODEV;
    return rc;
}

int CFastTrace_dump_neighbours(int ifindex, int family, struct cfasttrace_neighbour *out, size_t capacity)
{
    struct ndmsg ndm;
    memset(&ndm, 0, sizeof(ndm));
    /* AF_UNSPEC: the kernel dumps every neighbour table (ARP and NDP) in one answer. */
    ndm.ndm_family = (uint8_t)family;
    struct neighbour_ctx ctx = {ifindex, family, out, capacity, 0};
    int rc = dump(RTM_GETNEIGH, &ndm, sizeof(ndm), neighbour_cb, &ctx);
    if (rc < 0)
        return rc;
    return ctx.count > INT32_MAX ? INT32_MAX : (int)ctx.count;
}

_Static_assert(sizeof(struct cfasttrace_neighbour) == 28 && offsetof(struct cfasttrace_neighbour, lladdr) == 20,
               "cfasttrace_neighbour layout");
_Static_assert(offsetof(struct cfasttrace_link, address) == 13, "cfasttrace_link layout");
/* The kernel's NUD_VALID (include/net/neighbour.h, not exported to user space). */
_Static_assert((NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY) == 0xDE,
               "CFastTrace_NUD_VALID");

/* ---- Policy routing: rules other than the kernel's three defaults ---- */

#include <linux/fib_rules.h>

struct rule_ctx {
    int family;
    size_t extra;
};

static int rule_cb(const struct nlmsghdr *nlh, void *data)
{
    struct rule_ctx *ctx = data;
    const struct fib_rule_hdr *frh = mnl_nlmsg_get_payload(nlh);
    if (frh->family != ctx->family)
        return MNL_CB_OK;
    uint32_t priority = 0, table = frh->table;
    const struct nlattr *attr;
    mnl_attr_for_each(attr, nlh, sizeof(*frh)) {
        switch (mnl_attr_get_type(attr)) {
        case FRA_PRIORITY:
            if (mnl_attr_get_payload_len(attr) >= 4)
                priority = mnl_attr_get_u32(attr);
            break;
        case FRA_TABLE:
            if (mnl_attr_get_payload_len(attr) >= 4)
                table = mnl_attr_get_u32(attr);
            break;
        default:
            break;
        }
    }
    int is_default = frh->action == FR_ACT_TO_TBL && frh->src_len == 0 && frh->dst_len == 0 &&
                     ((priority == 0 && table == RT_TABLE_LOCAL) || (priority == 32766 && table == RT_TABLE_MAIN) ||
                      (priority == 32767 && table == RT_TABLE_DEFAULT));
    if (!is_default)
        ctx->extra++;
    return MNL_CB_OK;
}

int CFastTrace_count_policy_rules(int family)
{
    struct fib_rule_hdr frh;
    memset(&frh, 0, sizeof(frh));
    frh.family = (uint8_t)family;
    struct rule_ctx ctx = {family, 0};
    int rc = dump(RTM_GETRULE, &frh, sizeof(frh), rule_cb, &ctx);
    if (rc < 0)
        return rc;
    return ctx.extra > INT32_MAX ? INT32_MAX : (int)ctx.extra;
}

/* ---- nftables: base chains on the IPv4 and IPv6 output paths (output, postrouting) ---- */

#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>

struct chain_ctx {
    int ipv4, ipv6;
    size_t output_chains;
};

static int chain_cb(const struct nlmsghdr *nlh, void *data)
{
    struct chain_ctx *ctx = data;
    const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
    int family = nfg->nfgen_family;
    if (!(family == NFPROTO_INET || (ctx->ipv4 && family == NFPROTO_IPV4) || (ctx->ipv6 && family == NFPROTO_IPV6)))
        return MNL_CB_OK;
    const struct nlattr *attr;
    mnl_attr_for_each(attr, nlh, sizeof(*nfg)) {
        if (mnl_attr_get_type(attr) != NFTA_CHAIN_HOOK)
            continue;
        const struct nlattr *inner;
        mnl_attr_for_each_nested(inner, attr) {
            if (mnl_attr_get_type(inner) == NFTA_HOOK_HOOKNUM && mnl_attr_get_payload_len(inner) >= 4) {
                uint32_t hook = ntohl(mnl_attr_get_u32(inner));
                if (hook == NF_INET_LOCAL_OUT || hook == NF_INET_POST_ROUTING)
                    ctx->output_chains++;
            }
        }
    }
    return MNL_CB_OK;
}

int CFastTrace_count_output_chains(int ipv4, int ipv6)
{
    struct nfgenmsg nfg;
    memset(&nfg, 0, sizeof(nfg));
    nfg.nfgen_family = NFPROTO_UNSPEC;
    nfg.version = NFNETLINK_V0;
    nfg.res_id = 0;
    struct chain_ctx ctx = {ipv4, ipv6, 0};
    int rc = request(NETLINK_NETFILTER, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETCHAIN, NLM_F_DUMP, &nfg, sizeof(nfg),
                     chain_cb, &ctx);
    if (rc == 0)
        rc = ctx.output_chains > INT32_MAX ? INT32_MAX : (int)ctx.output_chains;
    return rc;
}
