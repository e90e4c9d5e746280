// Target lists: one target per line (IPv4 or IPv6 address, hostname or CIDR prefix), `#` comments and blank
// lines allowed; port lists (`443,80,8000-8010`). Parsing is strict and says file, line and reason;
// expansion into traces is lazy so a long list never sits in memory as traces.

import FastTraceWire

/// One target as written.
public enum TargetSpec: Sendable, Equatable, CustomStringConvertible {
    /// A single address, of either family.
    case address(IPAddress)
    /// A prefix, expanded to every address in it (network and broadcast addresses included). The length
    /// counts bits of the address's own family (0...32, 0...128).
    case prefix(IPAddress, length: Int)
    /// A name to resolve.
    case hostname(String)

    /// How many traces per port this target makes (1 for a name, which resolves to its first address).
    public var addressCount: Int {
        if case .prefix(let base, let length) = self { return 1 << (base.bitCount - length) }
        return 1
    }

    public var description: String {
        switch self {
        case .address(let a): a.description
        case .prefix(let a, let l): "\(a)/\(l)"
        case .hostname(let h): h
        }
    }
}

/// A line of a target list that could not be used.
public struct TargetInputError: Error, Sendable, Equatable, CustomStringConvertible {
    /// File name (or `-` for standard input).
    public var source: String
    /// Line number, from 1.
    public var line: Int
    /// Why.
    public var reason: String

    public init(source: String, line: Int, reason: String) {
        self.source = source
        self.line = line
        self.reason = reason
    }

    public var description: String { "\(source):\(line): \(reason)" }
}

/// Parses targets and ports.
public enum TargetParser {
    /// The largest prefix expansion allowed by default: a /16.
    public static let defaultMaxPrefixAddresses = 65_536

    /// Parses one target (already trimmed of comments and blanks). Throws a reason string.
    public static func parseTarget(_ text: Substring, maxPrefixAddresses: Int = defaultMaxPrefixAddresses)
        -> Result<TargetSpec, ReasonError>
    {
        // A dotted quad (digits and dots only, so none of the forms below) first: the common target,
        // read without scanning the text by Character for colons and slashes.
        if let address = IPv4Address(String(text)) {
            if let block = NonHostBlock.containing(IPAddress(address)) {
                return .failure(ReasonError("'\(text)' is \(block.phrase), not a host's: nothing to trace"))
            }
            return .success(.address(IPAddress(address)))
        }
        // `[2001:db8::1]:443`, as a URL writes an IPv6 host with a port.
        if text.first == "[", let close = text.firstIndex(of: "]"), close > text.startIndex {
            let host = text[text.index(after: text.startIndex)..<close]
            if looksLikeIPv6(host), IPAddress(String(host)) != nil {
                let hasPort = text.index(after: close) < text.endIndex
                return .failure(ReasonError(hasPort ? "'\(text)': give the address alone ('\(host)'); ports go in -p"
                    : "'\(text)': give the address without brackets ('\(host)')"))
            }
        }
        if looksLikeIPv6(text) { return parseIPv6(text, maxPrefixAddresses: maxPrefixAddresses) }
        if let colon = text.firstIndex(of: ":") {
            // No hostname has a colon. One colon: a host with a port, as a URL writes it.
            if text.filter({ $0 == ":" }).count == 1 {
                return .failure(ReasonError(
                    "'\(text)': give the host alone ('\(text[..<colon])'); ports go in -p"))
            }
            return .failure(ReasonError("'\(text)' is not a valid IPv6 address"))
        }
        if let slash = text.firstIndex(of: "/") {
            let addressText = text[..<slash]
            let lengthText = text[text.index(after: slash)...]
            guard let address = IPv4Address(String(addressText)) else {
                if addressText.isEmpty { return .failure(ReasonError("'\(text)': no address before the '/'")) }
                if isDigitsAndDots(addressText) {
                    return .failure(ReasonError("'\(text)': '\(addressText)' is not an IPv4 address"))
                }
                return .failure(ReasonError(
                    "'\(text)': '\(addressText)' is not an IPv4 or IPv6 address (a prefix is ADDRESS/LENGTH)"))
            }
            let length: Int
            switch prefixLength(lengthText, of: text, max: 32) {
            case .success(let value): length = value
            case .failure(let error): return .failure(error)
            }
            let size = 1 << (32 - length)
            guard size <= maxPrefixAddresses else {
                return .failure(ReasonError(
                    "'\(text)' expands to \(size) addresses; the cap is \(maxPrefixAddresses) (--max-prefix-addresses)"))
            }
            let base = IPAddress(address).masked(length: length)
            // A prefix inside a block no host can be in is refused whole; one that only overlaps such a
            // block (a /3 or wider) has those addresses refused one by one as it expands.
            if length == 32 { return parseTarget(Substring(address.description)) }
            if let block = NonHostBlock.all.first(where: { $0.length <= length && $0.contains(base) }) {
                return .failure(ReasonError("'\(text)' is in the \(block.name) block \(block): no host has these addresses"))
            }
            return .success(.prefix(base, length: length))
        }
        if isDigitsAndDots(text) {
            if text.split(separator: ".").contains(where: { $0.count > 1 && $0.first == "0" }) {
                return .failure(ReasonError(
                    "'\(text)' is ambiguous: a leading zero is octal to some tools and decimal to others; write the octets without leading zeros"))
            }
            return .failure(ReasonError("'\(text)' is not a valid IPv4 address"))
        }
        // Every label starting with a digit: an address in a form the resolver would read its own way
        // (`0x0a.1.1.1` is 10.1.1.1 to getaddrinfo). Only dotted-quad decimal is taken as an address.
        if text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ $0.first?.isNumber == true }) {
            return .failure(ReasonError("'\(text)' is not a valid IPv4 address (only dotted-quad decimal is accepted)"))
        }
        guard isHostname(text) else {
            return .failure(ReasonError("'\(text)' is neither an IPv4 or IPv6 address, a CIDR prefix nor a hostname"))
        }
        return .success(.hostname(String(text)))
    }

    /// True when `text` is ASCII digits and dots only (empty included): an IPv4 address or an attempt at one.
    @inline(__always)
    static func isDigitsAndDots(_ text: Substring) -> Bool {
        text.utf8.allSatisfy { $0 == UInt8(ascii: ".") || ($0 &- UInt8(ascii: "0")) < 10 }
    }

    /// Service ports whose number, written after an IPv6 address as a last group (`2001:db8::1:443`), is more
    /// likely a port than part of the address.
    static let portLikeGroups: Set<Int> = [21, 22, 23, 25, 53, 80, 110, 123, 143, 179, 389, 443, 465, 587, 636, 853,
        993, 995, 3306, 3389, 5060, 5432, 6443, 8080, 8443]

    /// When `text` is an IPv6 address that reads as another address with a port appended the way IPv4 and
    /// host names write one (`2001:db8::1:443`: the address 2001:db8::1:1bb, or 2001:db8::1 port 443?), the
    /// address and port it may have meant; nil otherwise. Only with `::` in the address (eight groups
    /// leave no room for a port), a last group of decimal digits naming a common service port, and what
    /// is before it a whole address that does not end in `::` (`2001:db8::53` is a host numbered 53).
    public static func portLikeSuffix(_ text: Substring) -> (address: String, port: Int)? {
        guard text.contains("::"), let colon = text.lastIndex(of: ":") else { return nil }
        let last = text[text.index(after: colon)...], before = text[..<colon]
        guard isDecimal(last), last.count <= 5, let port = Int(last),
            portLikeGroups.contains(port), !before.hasSuffix(":"),
            IPAddress(String(text))?.family == .v6, let address = IPAddress(String(before)), address.family == .v6
        else { return nil }
        return (String(before), port)
    }

    /// The prefix length after the slash of `text`: decimal digits, 0...`max`, without a leading zero (`/024`
    /// is refused, as a leading zero in an octet is: it was read as /24, where some tools read octal).
    static func prefixLength(_ lengthText: Substring, of text: Substring, max: Int) -> Result<Int, ReasonError> {
        guard !lengthText.isEmpty else {
            return .failure(ReasonError("'\(text)': prefix length must be 0...\(max) (none after the '/')"))
        }
        guard isDecimal(lengthText) else {
            return .failure(ReasonError("'\(text)': prefix length must be 0...\(max) (got '\(lengthText)')"))
        }
        if lengthText.count > 1 && lengthText.first == "0" {
            let digits = lengthText.drop { $0 == "0" }
            return .failure(ReasonError(
                "'\(text)': prefix length '\(lengthText)' has a leading zero; write /\(digits.isEmpty ? "0" : digits)"))
        }
        guard lengthText.count <= 3, let value = Int(lengthText), value <= max else {
            return .failure(ReasonError("'\(text)': prefix length must be 0...\(max) (got \(lengthText))"))
        }
        return .success(value)
    }

    /// An IPv6 address or prefix (RFC 4291 text; no zone). A prefix must expand to at most
    /// `maxPrefixAddresses` addresses (so at least /112 by default).
    static func parseIPv6(_ text: Substring, maxPrefixAddresses: Int) -> Result<TargetSpec, ReasonError> {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else {
            return .failure(ReasonError("'\(text)': '\(parts[0])' is not a valid IPv6 address"))
        }
        guard address.family == .v6 else {
            return .failure(ReasonError(
                "'\(text)' is an IPv4-mapped IPv6 address: write the IPv4 address \(address) itself"))
        }
        var length = 128
        if parts.count == 2 {
            let lengthText = parts[1]
            switch prefixLength(lengthText, of: text, max: 128) {
            case .success(let value): length = value
            case .failure(let error): return .failure(error)
            }
            guard 128 - length < 31, 1 << (128 - length) <= maxPrefixAddresses else {
                let size = 128 - length < 63 ? "\(1 << (128 - length))" : "2^\(128 - length)"
                return .failure(ReasonError(
                    "'\(text)' expands to \(size) addresses; the cap is \(maxPrefixAddresses) (--max-prefix-addresses)"))
            }
        }
        let base = address.masked(length: length)
        if let block = NonHostBlock.all.first(where: { $0.length <= length && $0.contains(base) }) {
            return .failure(ReasonError(length == 128 ? "'\(text)' is \(block.phrase), not a host's: nothing to trace"
                : "'\(text)' is in the \(block.name) block \(block): no host has these addresses"))
        }
        return .success(length == 128 ? .address(address) : .prefix(base, length: length))
    }

    /// Parses one line of a target list: nil for a blank or comment-only line, else the target, or why
    /// the line is not usable. `#` starts a comment; surrounding blanks and a trailing CR are ignored.
    public static func parseLine(_ rawLine: Substring, maxPrefixAddresses: Int = defaultMaxPrefixAddresses)
        -> Result<TargetSpec?, ReasonError>
    {
        // A line of digits and dots alone (most lines of a list of addresses) has no comment or blanks.
        if !rawLine.isEmpty && isDigitsAndDots(rawLine) {
            return parseTarget(rawLine, maxPrefixAddresses: maxPrefixAddresses).map { $0 }
        }
        var line = rawLine
        if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
        let trimmed = line.trimmingWhitespace()
        if trimmed.isEmpty { return .success(nil) }
        if trimmed.contains(where: { $0 == " " || $0 == "\t" }) {
            return .failure(ReasonError("'\(trimmed)': one target per line"))
        }
        return parseTarget(trimmed, maxPrefixAddresses: maxPrefixAddresses).map { $0 }
    }

    /// Parses a whole list in memory. Returns every usable line, or the first bad one. (The CLI reads
    /// lists as a stream, line by line with `LineSplitter` and `parseLine`; this is the same rule.)
    public static func parseList(_ text: String, source: String,
        maxPrefixAddresses: Int = defaultMaxPrefixAddresses) -> Result<[(line: Int, target: TargetSpec)], TargetInputError>
    {
        var out: [(line: Int, target: TargetSpec)] = []
        var number = 0
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            number += 1
            switch parseLine(rawLine, maxPrefixAddresses: maxPrefixAddresses) {
            case .success(let target?): out.append((number, target))
            case .success(nil): continue
            case .failure(let error): return .failure(TargetInputError(source: source, line: number, reason: error.reason))
            }
        }
        return .success(out)
    }

    /// Parses `443`, `80,443`, `8000-8010`, or a mix; rejects 0, > 65535, reversed ranges and junk.
    public static func parsePorts(_ text: String) -> Result<[UInt16], ReasonError> {
        parsePorts(text, service: { _ in nil })
    }

    /// Parses ports as above, where a port may also be a service name (`https`, `80,https`,
    /// `ssh-https`), which `service` turns into its number (the CLI looks names up in /etc/services;
    /// nil: no such service). Names may contain `-` (`http-alt`), so an item is first tried whole as a
    /// name; otherwise it is a range split at the one `-` where both ends are ports (two such splits
    /// are ambiguous and refused).
    public static func parsePorts(_ text: String, service: (Substring) -> UInt16?, serviceProtocol: String = "TCP")
        -> Result<[UInt16], ReasonError>
    {
        var ports: [UInt16] = []
        var seen = Set<UInt16>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let low: UInt16, high: UInt16
            switch parsePortItem(item, service: service, serviceProtocol: serviceProtocol) {
            case .success(let range): (low, high) = range
            case .failure(let error): return .failure(error)
            }
            guard low <= high else { return .failure(ReasonError("bad port range '\(item)': start above end")) }
            for port in low...high where seen.insert(port).inserted { ports.append(port) }
        }
        return .success(ports)
    }

    /// One comma-separated item: a port, a service name, or a range of either.
    private static func parsePortItem(_ item: Substring, service: (Substring) -> UInt16?, serviceProtocol: String)
        -> Result<(UInt16, UInt16), ReasonError>
    {
        if let single = port(item, service: service) { return .success((single, single)) }
        if isDecimal(item) || (item.first == "-" && isDecimal(item.dropFirst())) {
            return .failure(ReasonError("bad port '\(item)': ports are 1...65535"))
        }
        var splits: [(UInt16, UInt16)] = []
        var badNumber = false
        for dash in item.indices where item[dash] == "-" {
            let left = item[..<dash], right = item[item.index(after: dash)...]
            if let low = port(left, service: service), let high = port(right, service: service) {
                splits.append((low, high))
            } else if isDecimal(left) || isDecimal(right) {
                badNumber = badNumber || (isDecimal(left) && port(left, service: service) == nil)
                    || (isDecimal(right) && port(right, service: service) == nil)
            }
        }
        if splits.count == 1 { return .success(splits[0]) }
        if splits.count > 1 {
            return .failure(ReasonError("bad port range '\(item)': ambiguous (service names contain '-'); use numbers"))
        }
        if badNumber { return .failure(ReasonError("bad port '\(item)': ports are 1...65535")) }
        let nameLike = { (c: Character) in c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_" || c == ".") }
        if item.isEmpty || !item.allSatisfy(nameLike) {
            return .failure(ReasonError("bad port '\(item)'"))
        }
        return .failure(ReasonError("bad port '\(item)': not a number, and no \(serviceProtocol) service of that name"))
    }

    /// A port number (1...65535, decimal) or a known service name.
    private static func port(_ text: Substring, service: (Substring) -> UInt16?) -> UInt16? {
        if isDecimal(text) {
            guard text.count <= 5, let value = Int(text), value >= 1, value <= 65535 else { return nil }
            return UInt16(value)
        }
        guard !text.isEmpty, text.first != "-", let number = service(text), number != 0 else { return nil }
        return number
    }

    private static func isDecimal(_ text: Substring) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// Hex digits and colons with at least two colons (`::1`, `2001:db8::/32`, `::ffff:1.2.3.4`): an
    /// IPv6 address or prefix, which no hostname can be (a name has no colon).
    static func looksLikeIPv6(_ text: Substring) -> Bool {
        let address = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)[0]
        return address.filter { $0 == ":" }.count >= 2
            && address.allSatisfy { $0 == ":" || $0 == "." || $0.isHexDigit }
    }

    static func isHostname(_ text: Substring) -> Bool {
        guard !text.isEmpty, text.count <= 253 else { return false }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        for (i, label) in labels.enumerated() {
            if label.isEmpty { if i == labels.count - 1 && i > 0 { continue } else { return false } }
            guard label.count <= 63, label.first != "-", label.last != "-",
                label.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
            else { return false }
        }
        return true
    }
}

/// A reason, as an error.
public struct ReasonError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong.
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return s
    }
}

/// How one target becomes a trace request: its address (a name resolved) and the source it leaves
/// from. The single target of `fasttrace HOST PORT` is resolved here; a list's lines are expanded in one
/// place, `TargetStream` (prefixes to addresses, repeats dropped, `--shard`, names resolved on its own
/// threads), with the same two functions.
public enum TargetResolution {
    /// Resolves a hostname to an address, or says why not.
    public typealias Resolve = (String) -> Result<IPAddress, ReasonError>
    /// The source address to probe a destination from, or why there is none (no route).
    public typealias SourceFor = (IPAddress) -> Result<IPAddress, ReasonError>

    /// The request for a single target (an address or a name) on `port`, or why it cannot be traced:
    /// the resolver's reason for a name, `ADDRESS: reason` for an address with no usable route. A prefix
    /// is refused (it is a list).
    public static func single(_ target: TargetSpec, port: UInt16, resolve: Resolve, sourceFor: SourceFor)
        -> Result<TraceRequest, ReasonError>
    {
        let address: IPAddress
        var name: String?
        switch target {
        case .address(let a):
            address = a
        case .prefix:
            return .failure(ReasonError("'\(target)' is a prefix: give it in a --targets list"))
        case .hostname(let host):
            switch resolve(host) {
            case .success(let a): (address, name) = (a, host)
            case .failure(let error): return .failure(error)
            }
        }
        return sourceFor(address)
            .map { TraceRequest(index: 0, destination: address, port: port, source: $0, name: name) }
            .mapError { ReasonError("\(address): \($0.reason)") }
    }
}

/// An IPv4 block no host can have an address in (RFC 6890): a target there is refused, never probed.
public struct NonHostBlock: Sendable, Equatable, CustomStringConvertible {
    /// The block's network address.
    public var base: IPAddress
    /// Its prefix length, in its own family's bits.
    public var length: Int
    /// How a single address in it is described ("a multicast address (224.0.0.0/4)").
    public var phrase: String
    /// The block's name ("multicast").
    public var name: String

    static func v4(_ base: IPv4Address, _ length: Int, _ phrase: String, _ name: String) -> NonHostBlock {
        NonHostBlock(base: IPAddress(base), length: length, phrase: phrase, name: name)
    }

    static func v6(_ base: String, _ length: Int, _ phrase: String, _ name: String) -> NonHostBlock {
        NonHostBlock(base: IPAddress(base)!, length: length, phrase: phrase, name: name)
    }

    /// Every block, most specific first.
    public static let all: [NonHostBlock] = [
        .v4(IPv4Address(0), 32, "the unspecified address", "unspecified"),
        .v4(IPv4Address(0xFFFF_FFFF), 32, "the limited broadcast address", "limited broadcast"),
        .v4(IPv4Address(0), 8, "a \"this network\" address (0.0.0.0/8)", "\"this network\""),
        .v4(IPv4Address(224, 0, 0, 0), 4, "a multicast address (224.0.0.0/4)", "multicast"),
        .v4(IPv4Address(240, 0, 0, 0), 4, "a reserved address (240.0.0.0/4)", "reserved"),
        .v6("::", 128, "the unspecified address (::)", "unspecified"),
        .v6("::1", 128, "the loopback address (::1)", "loopback"),
        .v6("ff00::", 8, "a multicast address (ff00::/8)", "multicast"),
        .v6("fe80::", 10, "a link-local address (fe80::/10)", "link-local"),
    ]

    /// The block containing `address`, if any.
    public static func containing(_ address: IPAddress) -> NonHostBlock? {
        all.first { $0.contains(address) }
    }

    /// True when `address` is in this block (never across families).
    public func contains(_ address: IPAddress) -> Bool {
        address.family == base.family && address.masked(length: length) == base
    }

    public var description: String {
        base.family == .v4 && length == 32 || base.family == .v6 && length == 128 ? base.description
            : "\(base)/\(length)"
    }
}

/// Says why an address cannot be a host's: one of the `NonHostBlock`s, or the network or broadcast
/// address of a prefix this host is on (an interface's address and length; /31 and /32 have neither,
/// RFC 3021). The command line asks it for every target, a name's address and each address a prefix
/// expands to.
public struct HostAddressCheck: Sendable {
    /// A prefix this host has an address in.
    public struct OnLink: Sendable, Equatable {
        public var address: IPAddress
        public var length: Int
        public var interface: String
        public init(address: IPAddress, length: Int, interface: String) {
            self.address = address
            self.length = length
            self.interface = interface
        }
    }

    private let onLink: [OnLink]
    /// This host's own addresses, with their interfaces.
    private let own: [IPAddress: String]

    public init(onLink: [OnLink] = []) {
        self.onLink = onLink.filter { $0.address.family == .v4 && $0.length <= 30 }
        var own: [IPAddress: String] = [:]
        for entry in onLink where own[entry.address] == nil { own[entry.address] = entry.interface }
        self.own = own
    }

    /// Why `address` is no host's (`the broadcast address of 198.18.0.0/30 (on veth0)`), or nil.
    public func problem(_ address: IPAddress) -> String? {
        if let block = NonHostBlock.containing(address) { return "\(block.phrase), not a host's: nothing to trace" }
        // This host itself: the probes never leave it (the kernel loops them back through `lo`), so
        // there is no path to trace and no device the header could truthfully name.
        if let v4 = address.ipv4, v4.value >> 24 == 127 {
            return "a loopback address (127.0.0.0/8): this host itself, nothing on the network to trace"
        }
        if let interface = own[address] { return "this host's own address (on \(interface)): nothing on the network to trace" }
        // (IPv6 has no broadcast address, and a prefix's first address is its routers' anycast address.)
        guard let v4 = address.ipv4 else { return nil }
        for prefix in onLink {
            guard let own4 = prefix.address.ipv4 else { continue }
            let mask = IPv4Address.prefixMask(length: prefix.length)
            let network = own4.value & mask
            guard v4.value & mask == network else { continue }
            let name = "\(IPv4Address(network))/\(prefix.length) (on \(prefix.interface))"
            if v4.value == network { return "the network address of \(name), not a host's: nothing to trace" }
            if v4.value == network | ~mask { return "the broadcast address of \(name), not a host's: nothing to trace" }
        }
        return nil
    }
}

/// A port list with what it repeated: `-p https,443` is port 443 once, and says so.
public struct PortList: Sendable, Equatable {
    /// The ports, each once, in the order first given.
    public var ports: [UInt16]
    /// Ports given more than once: the port, the item that first gave it, and the one that repeated it.
    public var repeats: [Repeat]

    public struct Repeat: Sendable, Equatable {
        public var port: UInt16
        public var first: String
        public var again: String
    }

    /// One line about the repeats (nil when none): `port 443 is listed twice ('https' and '443'): traced
    /// once`; with several, the first three and how many in all.
    public var repeatsNote: String? {
        guard let one = repeats.first else { return nil }
        func pair(_ r: Repeat) -> String { r.first == r.again ? "'\(r.first)' twice" : "'\(r.first)' and '\(r.again)'" }
        if repeats.count == 1 { return "port \(one.port) is listed twice (\(pair(one))): it is traced once" }
        let shown = repeats.prefix(3).map { "\($0.port): \(pair($0))" }.joined(separator: "; ")
        return "\(repeats.count) ports are listed more than once (\(shown)\(repeats.count > 3 ? "; …" : "")): "
            + "each is traced once"
    }
}

extension TargetParser {
    /// `parsePorts`, also saying which ports were given more than once.
    public static func parsePortList(_ text: String, service: (Substring) -> UInt16?, serviceProtocol: String = "TCP")
        -> Result<PortList, ReasonError>
    {
        var list = PortList(ports: [], repeats: [])
        var firstItem: [UInt16: Substring] = [:]
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard case .success(let ports) = parsePorts(String(item), service: service, serviceProtocol: serviceProtocol)
            else {
                return parsePorts(String(item), service: service, serviceProtocol: serviceProtocol).map { _ in list }
            }
            for port in ports {
                if let first = firstItem[port] {
                    list.repeats.append(.init(port: port, first: String(first), again: String(item)))
                } else {
                    firstItem[port] = item
                    list.ports.append(port)
                }
            }
        }
        return .success(list)
    }
}
