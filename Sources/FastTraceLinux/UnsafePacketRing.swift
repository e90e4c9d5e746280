// The TPACKET_V3 receive ring: memory shared with the kernel, mapped from the packet socket. The kernel
// fills a block with packets and flips its status to TP_STATUS_USER; we read the packets and flip it
// back to TP_STATUS_KERNEL. This type is the only owner of the mapping and unmaps it in deinit.

#if canImport(Glibc)
import Glibc
#endif
import CFastTrace

/// Geometry of a TPACKET_V3 receive ring.
public struct RingGeometry: Sendable, Equatable {
    /// Bytes per block; a multiple of the page size. The kernel hands a block over when it is full
    /// or when `retireTimeoutMilliseconds` has passed since its first packet.
    public var blockSize: Int
    /// Number of blocks.
    public var blockCount: Int
    /// Frame size for the kernel's bookkeeping (V3 packs variable-size frames; this only has to be
    /// aligned and no larger than a block).
    public var frameSize: Int
    /// How long the kernel holds a partly filled block before handing it over.
    public var retireTimeoutMilliseconds: Int

    /// Makes a geometry.
    public init(blockSize: Int, blockCount: Int, frameSize: Int = 2048, retireTimeoutMilliseconds: Int) {
        self.blockSize = blockSize
        self.blockCount = blockCount
        self.frameSize = frameSize
        self.retireTimeoutMilliseconds = retireTimeoutMilliseconds
    }

    /// 64 blocks × 256 KiB = 16 MiB, retired after 2 ms.
    ///
    /// A kept reply occupies about 330 bytes (the 256-byte snap plus the V3 header and alignment), so
    /// a block holds ~790 replies and the ring ~50,000: at 400k replies/s (the send path's ceiling)
    /// that is 125 ms of slack for a stalled receive thread. Several blocks matter more than big
    /// ones: at low rates each retired block holds a few packets, and 64 blocks still give 128 ms at
    /// one block per 2 ms timeout. 2 ms bounds how late a lone reply reaches user space; RTTs do not
    /// depend on it (they come from the packet's own kernel timestamp).
    public static let `default` = RingGeometry(
        blockSize: 256 * 1024, blockCount: 64, frameSize: 2048, retireTimeoutMilliseconds: 2)

    /// The ring for a run sending `rate` probes a second: 64 blocks (each retired block holds at least one
    /// reply, so at low rates 64 blocks are 128 ms of slack at one block per 2 ms timeout), each big
    /// enough that the ring holds at least 125 ms of replies at one reply per probe, 16 KiB to 256 KiB
    /// a block (1 MiB in all at the default 2,000 probes/s and up to 20,000, 16 MiB from ~130,000).
    /// A probe draws at most one reply from its router or destination; a reply beyond that (a duplicate,
    /// a spray the filter lets through) that finds the ring full is counted as a ring drop.
    /// `retireTimeoutMilliseconds` longer than the default's means fewer wake-ups of the receive thread at
    /// low rates, and as many more milliseconds of slack (continuous mode).
    public static func sized(forRate rate: Int,
        retireTimeoutMilliseconds: Int = RingGeometry.default.retireTimeoutMilliseconds) -> RingGeometry
    {
        let replyBytes = 330, blocks = 64
        let wanted = rate * replyBytes / 8 / blocks  // 125 ms of replies over 64 blocks
        var blockSize = 16 * 1024
        while blockSize < wanted && blockSize < 256 * 1024 { blockSize *= 2 }
        return RingGeometry(blockSize: blockSize, blockCount: blocks, frameSize: 2048,
            retireTimeoutMilliseconds: retireTimeoutMilliseconds)
    }

    /// Total bytes mapped.
    public var totalBytes: Int { blockSize * blockCount }
}

/// The mmap'd TPACKET_V3 RX ring of a packet socket. Not copyable: exactly one owner unmaps it.
/// Hand out packet bytes only inside `drain`'s closure; they are the kernel's again after it returns.
struct UnsafePacketRing: ~Copyable {
    private let base: UnsafeMutableRawPointer
    let geometry: RingGeometry
    /// The block the kernel fills next, in ring order.
    private var nextBlock = 0

    /// Asks the kernel for the ring on `socket` (already set to TPACKET_V3) and maps it.
    init(socket: Int32, geometry: RingGeometry) throws(SystemError) {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        precondition(geometry.blockSize > 0 && geometry.blockSize % pageSize == 0,
                     "ring block size must be a multiple of the page size")
        precondition(geometry.blockCount > 0 && geometry.frameSize > 0 && geometry.frameSize <= geometry.blockSize)
        try syscallBlocking("setsockopt(PACKET_RX_RING)") {
            CFastTrace_packet_rx_ring(
                socket, UInt32(geometry.blockSize), UInt32(geometry.blockCount), UInt32(geometry.frameSize),
                UInt32(geometry.retireTimeoutMilliseconds))
        }
        let mapped = mmap(nil, geometry.totalBytes, PROT_READ | PROT_WRITE, MAP_SHARED, socket, 0)
        guard let mapped, mapped != MAP_FAILED else {
            throw SystemError(operation: "mmap(PACKET_RX_RING, \(geometry.totalBytes) bytes)", errno: errno)
        }
        self.base = mapped
        self.geometry = geometry
    }

    /// False once `unmap` has ended the mapping early.
    private var mapped = true

    /// Ends the mapping now, before the socket is closed (see `LinuxTransport`'s teardown); the ring
    /// must not be drained after. Idempotent.
    mutating func unmap() {
        guard mapped else { return }
        mapped = false
        // SAFETY: `base` is the mapping made in init, of exactly `totalBytes`; nothing else unmaps it,
        // and no packet pointer escapes `drain`.
        munmap(base, geometry.totalBytes)
    }

    deinit {
        // SAFETY: as in `unmap`.
        if mapped { munmap(base, geometry.totalBytes) }
    }

    /// True when the next block is ready for user space.
    var hasReadyBlock: Bool {
        // SAFETY: nextBlock < blockCount, so the block header lies inside the mapping.
        CFastTrace_block_is_ready(base + nextBlock * geometry.blockSize) != 0
    }

    /// Walks up to `maxBlocks` ready blocks in ring order, calls `body` for each packet with its
    /// bytes from the network header (`tp_snaplen` long) and its kernel timestamp in CLOCK_REALTIME
    /// nanoseconds, and hands each block back to the kernel after. Returns the packets delivered.
    mutating func drain(maxBlocks: Int, _ body: (UnsafeRawBufferPointer, UInt64) -> Void) -> Int {
        let blockSize = geometry.blockSize
        let headerLength = CFastTrace_TPACKET3_HDRLEN()
        var delivered = 0
        for _ in 0..<maxBlocks {
            // SAFETY: nextBlock < blockCount, so [block, block + blockSize) lies inside the mapping.
            let block = base + nextBlock * blockSize
            // Acquire: the kernel's writes to this block's packets are visible once we see USER.
            guard CFastTrace_block_is_ready(block) != 0 else { break }
            let count = Int(CFastTrace_block_num_pkts(block))
            var offset = Int(CFastTrace_block_offset_to_first_pkt(block))
            for _ in 0..<count {
                // Offsets come from the kernel; still check each packet lies inside this block so a
                // corrupt header cannot make us read outside the mapping.
                guard offset > 0, offset + headerLength <= blockSize else { break }
                let packet = block + offset
                let net = Int(CFastTrace_pkt_net(packet))
                let snap = Int(CFastTrace_pkt_snaplen(packet))
                guard net >= headerLength, offset + net + snap <= blockSize else { break }
                let nanos = UInt64(CFastTrace_pkt_sec(packet)) &* 1_000_000_000 &+ UInt64(CFastTrace_pkt_nsec(packet))
                // SAFETY: [packet + net, packet + net + snap) is inside this block (checked above), and
                // the block stays ours until the release below, after `body` returns.
                body(UnsafeRawBufferPointer(start: packet + net, count: snap), nanos)
                delivered += 1
                let next = Int(CFastTrace_pkt_next_offset(packet))
                if next == 0 { break }
                offset += next
            }
            // Release: our reads of the block happen before the kernel may reuse it.
            CFastTrace_block_release(block)
            nextBlock = nextBlock + 1 == geometry.blockCount ? 0 : nextBlock + 1
        }
        return delivered
    }
}
