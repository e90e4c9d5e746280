/* The non-inline parts of the shim that need _GNU_SOURCE or the real kernel structs: sendmmsg and
 * AF_PACKET socket options. */
#define _GNU_SOURCE
#include <sys/eventfd.h>
#include "CFastTrace.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sched.h>
#include <sys/socket.h>

_Static_assert(sizeof(struct CFastTrace_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr mirror size");
_Static_assert(offsetof(struct CFastTrace_mmsghdr, msg_hdr) == offsetof(struct mmsghdr, msg_hdr),
               "mmsghdr mirror msg_hdr");
_Static_assert(offsetof(struct CFastTrace_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len),
               "mmsghdr mirror msg_len");

int CFastTrace_sendmmsg(int fd, struct CFastTrace_mmsghdr *msgs, unsigned int n, int flags)
{
    return sendmmsg(fd, (struct mmsghdr *)msgs, n, flags);
}

int CFastTrace_packet_bind(int fd, int protocol, int ifindex)
{
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons((uint16_t)protocol);
    sll.sll_ifindex = ifindex;
    return bind(fd, (struct sockaddr *)&sll, sizeof(sll));
}

int CFastTrace_packet_rx_ring(int fd, unsigned block_size, unsigned block_nr, unsigned frame_size,
                              unsigned retire_blk_tov_ms)
{
    struct tpacket_req3 req;
    memset(&req, 0, sizeof(req));
    req.tp_block_size = block_size;
    req.tp_block_nr = block_nr;
    req.tp_frame_size = frame_size;
    req.tp_frame_nr = (block_size / frame_size) * block_nr;
    req.tp_retire_blk_tov = retire_blk_tov_ms;
    req.tp_sizeof_priv = 0;
    req.tp_feature_req_word = 0;
    return setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req));
}

int CFastTrace_packet_statistics(int fd, uint64_t *packets, uint64_t *drops, uint64_t *freeze_q_cnt)
{
    struct tpacket_stats_v3 st;
    socklen_t len = sizeof(st);
    memset(&st, 0, sizeof(st));
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0)
        return -1;
    *packets = st.tp_packets;
    *drops = st.tp_drops;
    *freeze_q_cnt = st.tp_freeze_q_cnt;
    return 0;
}

int CFastTrace_packet_tx_ring(int fd, unsigned block_size, unsigned frame_size, unsigned frame_nr)
{
    struct tpacket_req req;
    memset(&req, 0, sizeof(req));
    req.tp_block_size = block_size;
    req.tp_frame_size = frame_size;
    req.tp_block_nr = frame_size ? frame_nr / (block_size / frame_size) : 0;
    req.tp_frame_nr = frame_nr;
    return setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof(req));
}

long CFastTrace_packet_tx_kick(int fd)
{
    return (long)send(fd, NULL, 0, MSG_DONTWAIT);
}

/* The TX frame layout the Swift side relies on (UnsafeTxRing): status first, then the length, and the
 * link-layer bytes 32 bytes into the frame. */
_Static_assert(offsetof(struct tpacket2_hdr, tp_status) == 0, "tpacket2_hdr.tp_status");
_Static_assert(offsetof(struct tpacket2_hdr, tp_len) == 4, "tpacket2_hdr.tp_len");
_Static_assert(sizeof(struct tpacket2_hdr) == 32, "tpacket2_hdr size");
_Static_assert(TPACKET2_HDRLEN - sizeof(struct sockaddr_ll) == 32, "TX ring data offset");
_Static_assert(TP_STATUS_AVAILABLE == 0 && TP_STATUS_SEND_REQUEST == 1 && TP_STATUS_SENDING == 2 &&
                   TP_STATUS_WRONG_FORMAT == 4,
               "TX frame status values");

_Static_assert(SO_ATTACH_BPF == 50, "CFastTrace_SO_ATTACH_BPF");
_Static_assert(SOL_PACKET == 263, "CFastTrace_SOL_PACKET");

int CFastTrace_setns_net(int fd)
{
    return setns(fd, CLONE_NEWNET);
}

int CFastTrace_wake_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
