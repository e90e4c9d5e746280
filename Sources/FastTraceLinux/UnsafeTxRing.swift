// The TPACKET_V2 transmit ring: fixed-size frames in memory shared with the kernel, mapped from the
// send path's packet socket. We write a whole Ethernet frame into the frame at the cursor and flip its
// status to TP_STATUS_SEND_REQUEST; one send() makes the kernel take every requested frame from its
// head on, in ring order. A frame the kernel took is TP_STATUS_SENDING until its skb is freed, then
// TP_STATUS_AVAILABLE again. This type is the only owner of the mapping and unmaps it in deinit.
//
// Why TPACKET_V2 and not V3: for transmission V3 has the same fixed-size frames as V2 (the kernel
// refuses a V3 TX frame whose tp_next_offset is not 0); its blocks and retire timer serve reception
// only. V2's 32-byte header is all a TX frame needs, and it is the layout the kernel's TX ring has
// had longest. The receive ring keeps V3 (its own socket), where blocks do matter.

#if canImport(Glibc)
import Glibc
#endif
import CFastTrace

/// The mmap'd TPACKET_V2 TX ring of a packet socket. Not copyable: exactly one owner unmaps it. Used
/// by one thread (the scheduler's): between two kicks, no frame changes hands but by our own stores,
/// except SENDING → AVAILABLE, which the kernel does when a sent packet's buffer is freed.
///
/// The cursor (`next`) is where the next frame is written. The kernel keeps its own head, the next
/// frame it will look at; it moves only when it takes a frame. `reclaimUntaken` keeps the two equal
/// after every kick: frames the kernel did not take are made available again and the cursor is moved
/// back to the first of them, which is where the kernel's head stopped.
struct UnsafeTxRing: ~Copyable {
    private let base: UnsafeMutableRawPointer
    /// Bytes per frame (a power of two dividing the block size).
    let frameSize: Int
    /// Number of frames.
    let frameCount: Int
    /// Bytes per block of the ring request.
    let blockSize: Int
    /// Where a frame's link-layer bytes start (32: after the tpacket2_hdr, pinned in shim.c).
    let dataOffset: Int
    /// The next frame to write.
    private(set) var next = 0
    /// Frames requested (SEND_REQUEST) since the last kick, from `pendingStart` on in ring order.
    private(set) var pending = 0
    private var pendingStart = 0

    /// Asks the kernel for a TX ring of `frameCount` frames of `frameSize` bytes on `socket` (already
    /// set to TPACKET_V2) and maps it.
    init(socket: Int32, frameSize: Int, frameCount: Int, blockSize: Int) throws(SystemError) {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        precondition(blockSize > 0 && blockSize % pageSize == 0, "TX ring block size must be a multiple of the page size")
        precondition(frameSize >= 64 && blockSize % frameSize == 0 && frameCount % (blockSize / frameSize) == 0,
                     "TX ring frames must tile its blocks")
        try syscallBlocking("setsockopt(PACKET_TX_RING, \(frameCount) frames of \(frameSize) bytes)") {
            CFastTrace_packet_tx_ring(socket, UInt32(blockSize), UInt32(frameSize), UInt32(frameCount))
        }
        let total = frameSize * frameCount
        let mapped = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_SHARED, socket, 0)
        guard let mapped, mapped != MAP_FAILED else {
            throw SystemError(operation: "mmap(PACKET_TX_RING, \(total) bytes)", errno: errno)
        }
        self.base = mapped
        self.frameSize = frameSize
        self.frameCount = frameCount
        self.blockSize = blockSize
        self.dataOffset = CFastTrace_TPACKET2_TX_DATA_OFFSET()
    }

    /// False once `unmap` has ended the mapping early.
    private var mapped = true

    /// Ends the mapping now, before the socket is closed (see `LinuxTransport`'s teardown); the ring
    /// must not be used after. Idempotent.
    mutating func unmap() {
        guard mapped else { return }
        mapped = false
        // SAFETY: `base` is the mapping made in init, of exactly frameSize * frameCount bytes; nothing
        // else unmaps it, and no frame pointer outlives the call that handed it out.
        munmap(base, frameSize * frameCount)
    }

    deinit {
        // SAFETY: as in `unmap`.
        if mapped { munmap(base, frameSize * frameCount) }
    }

    /// Bytes a frame can carry (link-layer header included).
    var frameCapacity: Int { frameSize - dataOffset }

    @inline(__always)
    private func frame(_ index: Int) -> UnsafeMutableRawPointer {
        // SAFETY: index < frameCount (callers wrap it), so the frame lies inside the mapping; blocks are
        // a multiple of the frame size, so frames are contiguous across blocks.
        base + index * frameSize
    }

    @inline(__always)
    private func wrapped(_ index: Int) -> Int { index >= frameCount ? index - frameCount : index }

    /// The link-layer area of the frame at the cursor when that frame is free (the kernel is done with
    /// it), else nil: the ring is full and the caller must wait (back-pressure). Writing into it hands
    /// nothing to the kernel; `submit` does.
    func frameAtCursor() -> UnsafeMutableRawBufferPointer? {
        // Never lap the frames requested since the last kick.
        guard pending < frameCount else { return nil }
        let frame = frame(next)
        // Acquire: once AVAILABLE shows, the kernel has freed the packet that pointed into this frame.
        guard CFastTrace_tx_frame_status(frame) == CFastTrace_TP_STATUS_AVAILABLE() else { return nil }
        // SAFETY: [frame + dataOffset, frame + frameSize) lies inside this frame; the frame is ours
        // until `submit` flips its status.
        return UnsafeMutableRawBufferPointer(start: frame + dataOffset, count: frameSize - dataOffset)
    }

    /// Requests the frame at the cursor (written through `frameAtCursor`) be sent, with `length`
    /// link-layer bytes, and moves the cursor on. Sent at the next kick.
    mutating func submit(length: Int) {
        precondition(length > 0 && length <= frameCapacity, "TX frame length out of range")
        if pending == 0 { pendingStart = next }
        // Release: the frame's bytes and length are visible to the kernel before the status is.
        CFastTrace_tx_frame_submit(frame(next), UInt32(length))
        pending += 1
        next = wrapped(next + 1)
    }

    /// After a kick: how many of the frames requested since the previous kick the kernel took (a prefix,
    /// in ring order: it takes frames from its head on and stops at the first it cannot send), and
    /// whether the first frame it did not take was refused as malformed (TP_STATUS_WRONG_FORMAT). Every
    /// frame not taken is made available again and the cursor moves back to the first of them, where
    /// the kernel's head stopped. Call only between kicks, from the sending thread.
    mutating func reclaimUntaken() -> (taken: Int, wrongFormat: Bool) {
        let requested = pending
        pending = 0
        var taken = 0
        let notTaken = CFastTrace_TP_STATUS_SEND_REQUEST() | CFastTrace_TP_STATUS_WRONG_FORMAT()
        while taken < requested {
            // SENDING (in flight) or AVAILABLE (already freed): taken. SEND_REQUEST or WRONG_FORMAT: not.
            if CFastTrace_tx_frame_status(frame(wrapped(pendingStart + taken))) & notTaken != 0 { break }
            taken += 1
        }
        guard taken < requested else { return (taken, false) }
        let first = wrapped(pendingStart + taken)
        let wrongFormat = CFastTrace_tx_frame_status(frame(first)) & CFastTrace_TP_STATUS_WRONG_FORMAT() != 0
        for i in taken..<requested {
            // Release: our writes to the frame are done before it is available again (to ourselves).
            CFastTrace_tx_frame_reclaim(frame(wrapped(pendingStart + i)))
        }
        next = first
        return (taken, wrongFormat)
    }

    /// Frames whose status is not AVAILABLE (requested, in flight or refused): for tests and diagnostics.
    var busyFrames: Int {
        (0..<frameCount).reduce(0) { $0 + (CFastTrace_tx_frame_status(frame($1)) == CFastTrace_TP_STATUS_AVAILABLE() ? 0 : 1) }
    }
}
