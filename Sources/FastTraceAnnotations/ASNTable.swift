// Offline IP-to-AS lookups for `--asn-db`: which autonomous system announces a hop's address, read from
// a table file the operator downloads (iptoasn.com's range TSV, CAIDA's pfx2as, or `PREFIX ASN` lines).
// The table is flattened once into disjoint address segments, so a lookup is one binary search over a
// sorted array: O(log n), a few MB for a full table. Pure: the CLI reads the file and feeds the bytes.

/// An IP-to-AS table: for any IPv4 or IPv6 address, the AS that covers it (or none), and AS names.
///
/// Stored per family as disjoint segments that tile the whole address space: `starts` ascending from
/// 0, and `asns[i]` holds from `starts[i]` up to the next start (AS 0 = no AS). Where rows of the
/// input overlap, the narrowest row wins at each address (for prefixes: longest-prefix match), and
/// between rows of the same size the later one. Names are interned once per AS.
public struct ASNTable: Sendable {
    let v4Starts: [UInt32]
    let v4ASNs: [UInt32]
    let v6Starts: [UInt128]
    let v6ASNs: [UInt32]
    /// ASes with a name, ascending; the name of `nameASNs[i]` is `nameBytes[nameEnds[i-1]..<nameEnds[i]]`.
    let nameASNs: [UInt32]
    let nameEnds: [UInt32]
    let nameBytes: [UInt8]

    /// Rows read (across every file given), before flattening.
    public let rowCount: Int

    /// A table with no rows: every lookup is nil.
    public static let empty = ASNTable(v4Starts: [], v4ASNs: [], v6Starts: [], v6ASNs: [], nameASNs: [],
        nameEnds: [], nameBytes: [], rowCount: 0)

    /// The AS covering `address` (host-order IPv4), or nil when none does (or the row says AS 0).
    public func asn(v4 address: UInt32) -> UInt32? {
        Self.find(address, starts: v4Starts, asns: v4ASNs)
    }

    /// The AS covering `address` (an IPv6 address as a 128-bit integer, first byte most significant).
    public func asn(v6 address: UInt128) -> UInt32? {
        Self.find(address, starts: v6Starts, asns: v6ASNs)
    }

    /// The AS's name (iptoasn's AS_description), or nil when the table gives none.
    public func name(ofAS asn: UInt32) -> String? {
        var low = 0, high = nameASNs.count
        while low < high {
            let mid = (low + high) / 2
            if nameASNs[mid] < asn { low = mid + 1 } else { high = mid }
        }
        guard low < nameASNs.count, nameASNs[low] == asn else { return nil }
        let start = low == 0 ? 0 : Int(nameEnds[low - 1])
        return String(decoding: nameBytes[start..<Int(nameEnds[low])], as: UTF8.self)
    }

    /// Segments after flattening (IPv4, IPv6), for tests and the README's memory figure.
    public var segmentCounts: (v4: Int, v6: Int) { (v4Starts.count, v6Starts.count) }

    /// Bytes held by the lookup structure (array contents; not counting small fixed overheads).
    public var memoryBytes: Int {
        v4Starts.count * 4 + v4ASNs.count * 4 + v6Starts.count * 16 + v6ASNs.count * 4 + nameASNs.count * 8
            + nameBytes.count
    }

    /// Last segment starting at or below `key`: its AS, nil for AS 0 or an empty family.
    private static func find<Key: FixedWidthInteger>(_ key: Key, starts: [Key], asns: [UInt32]) -> UInt32? {
        // starts[0] == 0 whenever the family has segments, so a non-empty family always has a match.
        var low = 0, high = starts.count
        while low < high {
            let mid = (low + high) / 2
            if starts[mid] <= key { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let asn = asns[low - 1]
        return asn == 0 ? nil : asn
    }
}

/// What reading one table file gave: rows taken, lines refused (and the first of them).
public struct ASNFileReport: Sendable, Equatable {
    /// Rows taken from the file.
    public var rows = 0
    /// Lines that were neither a row, a comment nor blank (skipped).
    public var badLines = 0
    /// The first refused line's number (from 1) and why.
    public var firstBadLine: Int?
    public var firstBadReason: String?

    public init() {}
}

/// Builds an `ASNTable` from table files fed in chunks of any size. Each line is one of:
///
/// - a range (iptoasn.com's TSV): `START<TAB>END<TAB>ASN[<TAB>COUNTRY[<TAB>NAME]]`, START and END
///   IPv4 or IPv6 addresses of one family (or, for IPv4, host-order decimal integers, as iptoasn's
///   `ip2asn-v4-u32.tsv` writes them); END is inclusive;
/// - a prefix and its length (CAIDA pfx2as): `NETWORK LENGTH ASN`;
/// - a CIDR prefix (bgp.tools' table.txt and similar): `NETWORK/LENGTH ASN [anything]`.
///
/// Fields are separated by tabs, or in lines without a tab by spaces. An ASN may be written `AS64500`;
/// a multi-origin `64500_64501` or AS set `64500,64501` (pfx2as) counts as its first AS. Blank lines
/// and `#` comments are skipped; any other line is counted as bad and skipped (`ASNFileReport`).
/// A prefix with host bits set is bad (`198.51.100.1/24`), as is a range whose end is below its start.
public struct ASNTableBuilder {
    /// Longest line accepted; a real row is under 200 bytes.
    public static let maxLineBytes = 1024

    struct Row<Key> {
        var start: Key
        var end: Key
        var asn: UInt32
        var order: UInt32
    }

    var v4: [Row<UInt32>] = []
    var v6: [Row<UInt128>] = []
    var names: [UInt32: String] = [:]
    var order: UInt32 = 0
    var file = ASNFileReport()
    var line = 0
    var partial: [UInt8] = []
    var partialTooLong = false

    public init() {}

    /// The current file's unfinished line is already longer than `maxLineBytes`: whatever it is, it
    /// is not a table row, and the file need not be read further.
    public var lineTooLong: Bool { partialTooLong }
    /// Lines of the current file taken so far, plus the one being read.
    public var currentLine: Int { line + 1 }

    /// Feeds the next bytes of the current file (lines may be split anywhere).
    public mutating func feed(_ chunk: UnsafeRawBufferPointer) {
        let bytes = chunk.bindMemory(to: UInt8.self)
        var start = 0
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x0A {
                if partial.isEmpty && !partialTooLong {
                    take(UnsafeBufferPointer(rebasing: bytes[start..<i]))
                } else {
                    keep(UnsafeBufferPointer(rebasing: bytes[start..<i]))
                    takePartial()
                }
                start = i + 1
            }
            i += 1
        }
        keep(UnsafeBufferPointer(rebasing: bytes[start..<bytes.count]))
    }

    /// Feeds text (tests, small tables).
    public mutating func feed(_ text: String) {
        var text = text
        text.withUTF8 { feed(UnsafeRawBufferPointer($0)) }
    }

    /// Ends the current file (a last line without a newline counts) and returns what it gave; the next
    /// `feed` starts a new file at line 1.
    public mutating func endFile() -> ASNFileReport {
        if !partial.isEmpty || partialTooLong { takePartial() }
        let report = file
        file = ASNFileReport()
        line = 0
        return report
    }

    /// The table of every row fed so far.
    public func build() -> ASNTable {
        let (v4Starts, v4ASNs) = Self.flatten(v4)
        let (v6Starts, v6ASNs) = Self.flatten(v6)
        var nameASNs: [UInt32] = []
        var nameEnds: [UInt32] = []
        var nameBytes: [UInt8] = []
        nameASNs.reserveCapacity(names.count)
        nameEnds.reserveCapacity(names.count)
        for asn in names.keys.sorted() {
            nameBytes.append(contentsOf: names[asn]!.utf8)
            nameASNs.append(asn)
            nameEnds.append(UInt32(nameBytes.count))
        }
        return ASNTable(v4Starts: v4Starts, v4ASNs: v4ASNs, v6Starts: v6Starts, v6ASNs: v6ASNs,
            nameASNs: nameASNs, nameEnds: nameEnds, nameBytes: nameBytes, rowCount: v4.count + v6.count)
    }

    // MARK: lines

    private mutating func keep(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard !bytes.isEmpty else { return }
        if partial.count + bytes.count > Self.maxLineBytes {
            partialTooLong = true
            return
        }
        partial.append(contentsOf: bytes)
    }

    private mutating func takePartial() {
        if partialTooLong {
            line += 1
            bad("line is longer than \(Self.maxLineBytes) bytes")
        } else {
            partial.withUnsafeBufferPointer { take($0) }
        }
        partial.removeAll(keepingCapacity: true)
        partialTooLong = false
    }

    private mutating func bad(_ reason: String) {
        file.badLines += 1
        if file.firstBadLine == nil {
            file.firstBadLine = line
            file.firstBadReason = reason
        }
    }

    /// One line, without its `\n`.
    mutating func take(_ raw: UnsafeBufferPointer<UInt8>) {
        line += 1
        if raw.count > Self.maxLineBytes {
            bad("line is longer than \(Self.maxLineBytes) bytes")
            return
        }
        var end = raw.count
        while end > 0 && (raw[end - 1] == 0x0D || raw[end - 1] == 0x20 || raw[end - 1] == 0x09) { end -= 1 }
        var begin = 0
        while begin < end && (raw[begin] == 0x20 || raw[begin] == 0x09) { begin += 1 }
        if begin == end || raw[begin] == 0x23 { return }  // blank or # comment
        let text = UnsafeBufferPointer(rebasing: raw[begin..<end])
        if let reason = parse(text) { bad(reason) }
    }

    /// Parses one trimmed, non-empty line into a row; returns why not.
    private mutating func parse(_ text: UnsafeBufferPointer<UInt8>) -> String? {
        var fields: [Range<Int>] = []
        fields.reserveCapacity(5)
        if text.contains(0x09) {
            // Tabs: at most five fields, the fifth (an AS name) may hold spaces and runs to the end.
            var start = 0
            for i in 0..<text.count where text[i] == 0x09 && fields.count < 4 {
                fields.append(start..<i)
                start = i + 1
            }
            fields.append(start..<text.count)
        } else {
            var i = 0
            while i < text.count {
                while i < text.count && text[i] == 0x20 { i += 1 }
                let start = i
                while i < text.count && text[i] != 0x20 { i += 1 }
                if i > start { fields.append(start..<i) }
            }
        }
        func field(_ k: Int) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: text[fields[k]]) }

        let first = field(0)
        if let slash = first.firstIndex(of: 0x2F) {
            // NETWORK/LENGTH ASN
            guard fields.count >= 2 else { return "a prefix without an AS number" }
            let network = UnsafeBufferPointer(rebasing: first[first.startIndex..<slash])
            let length = UnsafeBufferPointer(rebasing: first[(slash + 1)..<first.endIndex])
            return addPrefix(network, length, asnField: field(1))
        }
        guard fields.count >= 3 else {
            return "expected START END ASN, NETWORK LENGTH ASN or NETWORK/LENGTH ASN, got \(fields.count) field(s)"
        }
        // A range has an address (or, for ip2asn-v4-u32, a number past any prefix length) second, and
        // usually more than three fields; pfx2as has a prefix length second and exactly three.
        let second = field(1)
        if fields.count > 3 || second.contains(0x2E) || second.contains(0x3A) || decimal(second).map({ $0 > 128 }) == true {
            return addRange(first, second, asnField: field(2), nameField: fields.count >= 5 ? field(4) : nil)
        }
        return addPrefix(first, second, asnField: field(2))
    }

    private mutating func addPrefix(_ network: UnsafeBufferPointer<UInt8>, _ lengthText: UnsafeBufferPointer<UInt8>,
        asnField: UnsafeBufferPointer<UInt8>) -> String?
    {
        guard let asn = Self.asn(asnField) else { return "'\(printable(asnField))' is not an AS number" }
        guard let length = decimal(lengthText) else { return "'\(printable(lengthText))' is not a prefix length" }
        if let address = parseIPv4(network) {
            guard length <= 32 else { return "prefix length \(length) is over 32" }
            let hostBits: UInt32 = length == 32 ? 0 : ~UInt32(0) >> length
            guard address & hostBits == 0 else { return "\(printable(network))/\(length) has host bits set" }
            append(v4: address, address | hostBits, asn)
            return nil
        }
        if let address = parseIPv6(network) {
            guard length <= 128 else { return "prefix length \(length) is over 128" }
            let hostBits: UInt128 = length == 128 ? 0 : ~UInt128(0) >> length
            guard address & hostBits == 0 else { return "\(printable(network))/\(length) has host bits set" }
            append(v6: address, address | hostBits, asn)
            return nil
        }
        return "'\(printable(network))' is not an IPv4 or IPv6 address"
    }

    private mutating func addRange(_ startText: UnsafeBufferPointer<UInt8>, _ endText: UnsafeBufferPointer<UInt8>,
        asnField: UnsafeBufferPointer<UInt8>, nameField: UnsafeBufferPointer<UInt8>?) -> String?
    {
        guard let asn = Self.asn(asnField) else { return "'\(printable(asnField))' is not an AS number" }
        if let start = parseIPv4(startText) ?? decimal(startText).flatMap(UInt32.init(exactly:)) {
            guard let end = parseIPv4(endText) ?? decimal(endText).flatMap(UInt32.init(exactly:)) else {
                return "'\(printable(endText))' is not an IPv4 address like the range's start"
            }
            guard start <= end else { return "range end \(printable(endText)) is below its start" }
            append(v4: start, end, asn)
        } else if let start = parseIPv6(startText) {
            guard let end = parseIPv6(endText) else {
                return "'\(printable(endText))' is not an IPv6 address like the range's start"
            }
            guard start <= end else { return "range end \(printable(endText)) is below its start" }
            append(v6: start, end, asn)
        } else {
            return "'\(printable(startText))' is not an IPv4 or IPv6 address"
        }
        if asn != 0, let nameField, !nameField.isEmpty, names[asn] == nil {
            names[asn] = String(decoding: nameField, as: UTF8.self)
        }
        return nil
    }

    private mutating func append(v4 start: UInt32, _ end: UInt32, _ asn: UInt32) {
        v4.append(Row(start: start, end: end, asn: asn, order: order))
        order &+= 1
        file.rows += 1
    }

    private mutating func append(v6 start: UInt128, _ end: UInt128, _ asn: UInt32) {
        v6.append(Row(start: start, end: end, asn: asn, order: order))
        order &+= 1
        file.rows += 1
    }

    /// `64500`, `AS64500`, or the first AS of `64500_64501` / `64500,64501`.
    static func asn(_ text: UnsafeBufferPointer<UInt8>) -> UInt32? {
        var digits = text[...]
        if digits.count > 2 && (digits[digits.startIndex] | 0x20) == 0x61 && (digits[digits.startIndex + 1] | 0x20) == 0x73 {
            digits = digits.dropFirst(2)
        }
        if let cut = digits.firstIndex(where: { $0 == 0x5F || $0 == 0x2C }) { digits = digits[..<cut] }
        guard let value = decimal(UnsafeBufferPointer(rebasing: digits)) else { return nil }
        return UInt32(exactly: value)
    }

    // MARK: flattening

    /// Disjoint segments tiling the family's space from 0: where rows overlap, the narrowest covering
    /// row wins (longest-prefix match), the later row between equals; gaps are AS 0. Adjacent segments
    /// of one AS are merged.
    static func flatten<Key: FixedWidthInteger & UnsignedInteger>(_ input: [Row<Key>]) -> ([Key], [UInt32]) {
        guard !input.isEmpty else { return ([], []) }
        var rows = input
        if !zip(rows, rows.dropFirst()).allSatisfy({ $0.start < $1.start }) {
            rows.sort { $0.start != $1.start ? $0.start < $1.start : $0.order < $1.order }
        }
        var starts: [Key] = []
        var asns: [UInt32] = []
        starts.reserveCapacity(rows.count + 1)
        asns.reserveCapacity(rows.count + 1)
        func emit(_ start: Key, _ asn: UInt32) {
            if let last = asns.last, last == asn { return }
            if let last = starts.last, last == start {
                asns[asns.count - 1] = asn
                if asns.count >= 2 && asns[asns.count - 2] == asn {
                    starts.removeLast()
                    asns.removeLast()
                }
                return
            }
            starts.append(start)
            asns.append(asn)
        }
        if rows[0].start > 0 { emit(0, 0) }

        // The common case (iptoasn): sorted rows that never overlap. One pass.
        if zip(rows, rows.dropFirst()).allSatisfy({ $0.end < $1.start }) {
            for (i, row) in rows.enumerated() {
                emit(row.start, row.asn)
                if row.end == Key.max { break }
                if i + 1 == rows.count || rows[i + 1].start > row.end + 1 { emit(row.end + 1, 0) }
            }
            return (starts, asns)
        }

        // Overlaps (nested prefixes of pfx2as, or several files): sweep every boundary with a heap of
        // the rows covering it, narrowest (then latest) on top; rows that ended are dropped from the
        // top lazily.
        var boundaries: [Key] = []
        boundaries.reserveCapacity(rows.count * 2)
        for row in rows {
            boundaries.append(row.start)
            if row.end < Key.max { boundaries.append(row.end + 1) }
        }
        boundaries.sort()
        var heap = RowHeap(rows: rows)
        var next = 0
        var previous: Key?
        for boundary in boundaries {
            if boundary == previous { continue }
            previous = boundary
            while next < rows.count && rows[next].start == boundary {
                heap.push(next)
                next += 1
            }
            while let top = heap.top, rows[top].end < boundary { heap.pop() }
            emit(boundary, heap.top.map { rows[$0].asn } ?? 0)
        }
        return (starts, asns)
    }

    /// A binary min-heap of row indices: narrower rows first, later rows first among equals.
    struct RowHeap<Key: FixedWidthInteger & UnsignedInteger> {
        let rows: [Row<Key>]
        var items: [Int] = []

        var top: Int? { items.first }

        func before(_ a: Int, _ b: Int) -> Bool {
            let sizeA = rows[a].end - rows[a].start, sizeB = rows[b].end - rows[b].start
            return sizeA != sizeB ? sizeA < sizeB : rows[a].order > rows[b].order
        }

        mutating func push(_ row: Int) {
            items.append(row)
            var child = items.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard before(items[child], items[parent]) else { break }
                items.swapAt(child, parent)
                child = parent
            }
        }

        mutating func pop() {
            guard !items.isEmpty else { return }
            items.swapAt(0, items.count - 1)
            items.removeLast()
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var best = parent
                if left < items.count && before(items[left], items[best]) { best = left }
                if right < items.count && before(items[right], items[best]) { best = right }
                if best == parent { return }
                items.swapAt(parent, best)
                parent = best
            }
        }
    }
}

// MARK: address text

/// A decimal number of at most 10 digits (no sign, no spaces), or nil.
func decimal(_ text: UnsafeBufferPointer<UInt8>) -> UInt64? {
    guard !text.isEmpty, text.count <= 10 else { return nil }
    var value: UInt64 = 0
    for byte in text {
        guard byte >= 0x30 && byte <= 0x39 else { return nil }
        value = value * 10 + UInt64(byte - 0x30)
    }
    return value
}

/// Dotted-quad decimal IPv4 (no leading zeros, as everywhere in fasttrace) as a host-order integer.
public func parseIPv4(_ text: UnsafeBufferPointer<UInt8>) -> UInt32? {
    var value: UInt32 = 0
    var octet: UInt32 = 0
    var digits = 0
    var dots = 0
    for byte in text {
        if byte == 0x2E {
            guard digits > 0, dots < 3 else { return nil }
            value = value << 8 | octet
            octet = 0
            digits = 0
            dots += 1
        } else if byte >= 0x30 && byte <= 0x39 {
            if digits == 1 && octet == 0 { return nil }  // leading zero
            octet = octet * 10 + UInt32(byte - 0x30)
            digits += 1
            guard octet <= 255 else { return nil }
        } else {
            return nil
        }
    }
    guard dots == 3, digits > 0 else { return nil }
    return value << 8 | octet
}

/// IPv6 text (RFC 4291 section 2.2: hex groups, one `::`, an IPv4 tail) as a 128-bit integer.
public func parseIPv6(_ text: UnsafeBufferPointer<UInt8>) -> UInt128? {
    guard text.count >= 2, text.count <= 45 else { return nil }
    var groups: [UInt16] = []  // before and after `::`
    groups.reserveCapacity(8)
    var gapAt: Int?
    var i = 0
    if text[0] == 0x3A {
        guard text[1] == 0x3A else { return nil }
        gapAt = 0
        i = 2
        if i == text.count { return 0 }
    }
    while i < text.count {
        // One group, or an IPv4 tail.
        var value: UInt32 = 0
        var digits = 0
        var j = i
        while j < text.count, let nibble = hexValue(text[j]) {
            value = value << 4 | UInt32(nibble)
            digits += 1
            j += 1
            guard digits <= 4 else { return nil }
        }
        if j < text.count && text[j] == 0x2E {
            // IPv4 tail: the last 32 bits.
            guard let v4 = parseIPv4(UnsafeBufferPointer(rebasing: text[i..<text.count])) else { return nil }
            groups.append(UInt16(v4 >> 16))
            groups.append(UInt16(v4 & 0xFFFF))
            i = text.count
            break
        }
        guard digits > 0 else { return nil }
        groups.append(UInt16(value))
        i = j
        if i == text.count { break }
        guard text[i] == 0x3A else { return nil }
        i += 1
        if i < text.count && text[i] == 0x3A {
            guard gapAt == nil else { return nil }
            gapAt = groups.count
            i += 1
            if i == text.count { break }
        } else if i == text.count {
            return nil  // a trailing single colon
        }
    }
    if let gapAt {
        guard groups.count <= 7 else { return nil }
        groups.insert(contentsOf: repeatElement(0, count: 8 - groups.count), at: gapAt)
    }
    guard groups.count == 8 else { return nil }
    var value: UInt128 = 0
    for group in groups { value = value << 16 | UInt128(group) }
    return value
}

/// A hex digit's value, or nil.
private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case 0x30...0x39: byte - 0x30
    case 0x61...0x66: byte - 0x61 + 10
    case 0x41...0x46: byte - 0x41 + 10
    default: nil
    }
}

/// Up to 40 bytes of `bytes` for a message, with anything but printable ASCII as `\xNN`.
func printable(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
    var out = ""
    for byte in bytes.prefix(40) {
        if byte >= 0x20 && byte < 0x7F {
            out.unicodeScalars.append(Unicode.Scalar(byte))
        } else {
            let hex = String(byte, radix: 16)
            out += "\\x" + (hex.count == 1 ? "0" : "") + hex
        }
    }
    return bytes.count > 40 ? out + "…" : out
}
