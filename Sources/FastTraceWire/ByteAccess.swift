// Big-endian loads and stores at byte offsets of raw buffers. Every view and writer in this module
// goes through these, so "network byte order" is handled in exactly one place.

extension UnsafeRawBufferPointer {
    /// The byte at `offset`. The caller has checked `offset < count` (views check their length once).
    @inlinable @inline(__always)
    func wireUInt8(at offset: Int) -> UInt8 {
        // SAFETY: callers only pass offsets below a length their view verified when it was made.
        self.load(fromByteOffset: offset, as: UInt8.self)
    }

    /// The big-endian 16-bit word at `offset`, in host order.
    @inlinable @inline(__always)
    func wireUInt16(at offset: Int) -> UInt16 {
        // SAFETY: as above; unaligned because IP headers inside ICMP quotes have no alignment.
        UInt16(bigEndian: self.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// The big-endian 32-bit word at `offset`, in host order.
    @inlinable @inline(__always)
    func wireUInt32(at offset: Int) -> UInt32 {
        // SAFETY: as above.
        UInt32(bigEndian: self.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}

extension UnsafeMutableRawBufferPointer {
    /// Stores a byte at `offset`.
    @inlinable @inline(__always)
    func storeWireUInt8(_ value: UInt8, at offset: Int) {
        // SAFETY: writers check the buffer size once (precondition) before storing.
        self.storeBytes(of: value, toByteOffset: offset, as: UInt8.self)
    }

    /// Stores a host-order 16-bit value big-endian at `offset`.
    @inlinable @inline(__always)
    func storeWireUInt16(_ value: UInt16, at offset: Int) {
        // SAFETY: as above; storeBytes accepts unaligned offsets for trivial types.
        self.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    /// Stores a host-order 32-bit value big-endian at `offset`.
    @inlinable @inline(__always)
    func storeWireUInt32(_ value: UInt32, at offset: Int) {
        // SAFETY: as above.
        self.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }
}
