// The pure parts of reading a target list as a stream: cutting bytes that arrive in arbitrary chunks
// into numbered lines (bounded memory, however long a line is), and a fixed-capacity FIFO for the
// hand-over between the reading thread and the engine. The threads and the reads live in the CLI and
// FastTraceLinux; nothing here blocks or calls the system.

/// One line of input, without its line ending.
public struct InputLine: Sendable, Equatable {
    /// Line number, from 1.
    public var number: Int
    /// The text (invalid UTF-8 is replaced). At most `LineSplitter.maxLineBytes` bytes of it are kept.
    public var text: String
    /// True when the line was longer than `LineSplitter.maxLineBytes` and the rest was dropped.
    public var truncated: Bool
    /// True when the line (before any `#`) is not valid UTF-8; `text` then spells each invalid byte out
    /// as `\xNN`, so a message quoting it shows the bytes that are there.
    public var invalidUTF8: Bool

    public init(number: Int, text: String, truncated: Bool = false, invalidUTF8: Bool = false) {
        self.number = number
        self.text = text
        self.truncated = truncated
        self.invalidUTF8 = invalidUTF8
    }
}

/// `bytes` as text with every byte that is not part of valid UTF-8 written out as `\xNN`, and whether
/// there was any.
public func decodingUTF8EscapingInvalid(_ bytes: some Collection<UInt8>) -> (text: String, invalid: Bool) {
    var parser = Unicode.UTF8.ForwardParser()
    var iterator = bytes.makeIterator()
    var text = ""
    var invalid = false
    var pending = Array(bytes).makeIterator()
    while true {
        switch parser.parseScalar(from: &iterator) {
        case .valid(let encoded):
            text.unicodeScalars.append(Unicode.UTF8.decode(encoded))
            for _ in 0..<encoded.count { _ = pending.next() }
        case .error(let length):
            invalid = true
            for _ in 0..<length {
                let byte = pending.next() ?? 0
                text += "\\x" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16)
            }
        case .emptyInput:
            return (text, invalid)
        }
    }
}

/// Cuts a byte stream into lines at `\n` (a CR before it is the parser's business). Feed chunks as
/// they arrive, then call `finish` at end of input for a last line without a newline. Holds at most
/// one partial line of `maxLineBytes`, so a huge line (or a file with no newline) cannot fill memory.
public struct LineSplitter: Sendable {
    /// Longest line kept; a target is far shorter (a hostname is at most 253 bytes).
    public static let maxLineBytes = 4096

    private var partial: [UInt8] = []
    private var partialTruncated = false
    private var number = 0

    public init() {}

    /// The complete lines in `chunk` (together with what earlier chunks left over), in order.
    public mutating func lines(in chunk: UnsafeRawBufferPointer) -> [InputLine] {
        var out: [InputLine] = []
        var start = 0
        for i in 0..<chunk.count where chunk[i] == 0x0A {
            keep(UnsafeRawBufferPointer(rebasing: chunk[start..<i]))
            out.append(takeLine())
            start = i + 1
        }
        keep(UnsafeRawBufferPointer(rebasing: chunk[start..<chunk.count]))
        return out
    }

    /// The last line, if the input did not end with a newline.
    public mutating func finish() -> InputLine? {
        guard !partial.isEmpty || partialTruncated else { return nil }
        return takeLine()
    }

    private mutating func keep(_ bytes: UnsafeRawBufferPointer) {
        let room = Self.maxLineBytes - partial.count
        if bytes.count > room { partialTruncated = true }
        partial.append(contentsOf: bytes.prefix(max(0, room)))
    }

    private mutating func takeLine() -> InputLine {
        number += 1
        // A UTF-8 byte-order mark (what some Windows editors put first) is not part of line 1.
        if number == 1 && partial.starts(with: [0xEF, 0xBB, 0xBF]) { partial.removeFirst(3) }
        // Bytes after a `#` are a comment (a Latin-1 comment is fine); before it they must be UTF-8.
        let hash = partial.firstIndex(of: UInt8(ascii: "#")) ?? partial.endIndex
        var text = String(decoding: partial, as: UTF8.self)
        var invalid = false
        if partial[..<hash].contains(where: { $0 >= 0x80 }) {
            let decoded = decodingUTF8EscapingInvalid(partial[..<hash])
            if decoded.invalid { (text, invalid) = (decoded.text, true) }
        }
        let line = InputLine(number: number, text: text, truncated: partialTruncated, invalidUTF8: invalid)
        partial.removeAll(keepingCapacity: true)
        partialTruncated = false
        return line
    }
}

extension TargetParser {
    /// `parseLine` for a line from a `LineSplitter`: a line cut short is refused unless what was kept
    /// is already a comment (a long comment is fine).
    public static func parseLine(_ line: InputLine, maxPrefixAddresses: Int = defaultMaxPrefixAddresses)
        -> Result<TargetSpec?, ReasonError>
    {
        if line.invalidUTF8 {
            return .failure(ReasonError("'\(Substring(line.text).trimmingWhitespace())' is not valid UTF-8 (invalid bytes shown as \\xNN)"))
        }
        if line.truncated && !line.text.contains("#") {
            return .failure(ReasonError("line is longer than \(LineSplitter.maxLineBytes) bytes"))
        }
        return parseLine(Substring(line.text), maxPrefixAddresses: maxPrefixAddresses)
    }
}

/// A first-in first-out queue of fixed capacity: `push` refuses when full, so whoever fills it must
/// wait (the reader thread) and memory stays flat however long the input is. Not thread-safe by
/// itself; the streaming source guards it with its lock.
public struct BoundedQueue<Element> {
    private var storage: [Element?]
    private var head = 0
    /// Elements queued.
    public private(set) var count = 0

    /// An empty queue holding at most `capacity` (≥ 1) elements.
    public init(capacity: Int) {
        precondition(capacity >= 1)
        storage = Array(repeating: nil, count: capacity)
    }

    /// Most elements it holds.
    public var capacity: Int { storage.count }
    public var isEmpty: Bool { count == 0 }
    public var isFull: Bool { count == storage.count }

    /// Appends `element`; false (and nothing changes) when full.
    @discardableResult
    public mutating func push(_ element: Element) -> Bool {
        guard count < storage.count else { return false }
        storage[(head + count) % storage.count] = element
        count += 1
        return true
    }

    /// Removes and returns the oldest element, or nil when empty.
    public mutating func pop() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head]
        storage[head] = nil
        head = (head + 1) % storage.count
        count -= 1
        return element
    }
}

/// Counts the targets a list holds, ahead of the stream that traces it, so a progress line can show a
/// total from the first seconds: fed the same bytes in chunks, it cuts and parses lines exactly as the
/// stream does (`LineSplitter`, `TargetParser.parseLine`) and adds up the addresses each line expands to
/// (a prefix its size, a name one). Lines that are not targets count nothing. What it cannot know
/// before tracing (duplicates, names that do not resolve, addresses without a route) the stream takes
/// off as it meets them. Memory is one partial line, whatever the list's length.
public struct TargetCounter: Sendable {
    private var splitter = LineSplitter()
    private let maxPrefixAddresses: Int
    /// Addresses (traces per port) counted so far.
    public private(set) var addresses = 0
    /// Lines counted so far.
    public private(set) var lines = 0

    public init(maxPrefixAddresses: Int = TargetParser.defaultMaxPrefixAddresses) {
        self.maxPrefixAddresses = maxPrefixAddresses
    }

    /// Counts the complete lines in `chunk` (with what earlier chunks left over).
    public mutating func count(_ chunk: UnsafeRawBufferPointer) {
        for line in splitter.lines(in: chunk) { add(line) }
    }

    /// Counts the last line, if the input did not end with a newline. Call once, at end of input.
    public mutating func finish() {
        if let last = splitter.finish() { add(last) }
    }

    private mutating func add(_ line: InputLine) {
        lines += 1
        if case .success(let spec?) = TargetParser.parseLine(line, maxPrefixAddresses: maxPrefixAddresses) {
            addresses += spec.addressCount
        }
    }
}
