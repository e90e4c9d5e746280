// The command line: tcptraceroute's options and output for one target, plus batch mode for many
// targets × ports with JSON lines, a progress line and a summary. All checks of user input happen here,
// before a packet is sent; each failure is one line saying what and where.

import ArgumentParser
import FastTraceAnnotations
import FastTraceCore
import FastTraceLinux
import FastTraceMetricsServer
import FastTraceStats
import FastTraceWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Set by SIGINT/SIGTERM; the engine then reports what it has and stops.
let cancelRequested = Atomic<Bool>(false)
/// Set when `--plot`'s file could not be written (said in one line): the run exits 1.
nonisolated(unsafe) var plotWriteFailed = false

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, csv, dot
}

extension SendPathChoice: ExpressibleByArgument {}

/// `--dnat` / `--no-dnat`.
enum DNATReport: String, EnumerableFlag {
    case dnat, noDnat

    static func name(for value: DNATReport) -> NameSpecification {
        value == .dnat ? .customLong("dnat") : .customLong("no-dnat")
    }

    static func help(for value: DNATReport) -> ArgumentHelp? {
        switch value {
        case .dnat:
            ArgumentHelp("Print \"Detected DNAT to ADDR\" before the hop whose quote first shows the destination "
                + "rewritten (tcptraceroute's --dnat).")
        case .noDnat:
            ArgumentHelp("Do not print those lines (default: --no-dnat, as in tcptraceroute); such replies are "
                + "matched either way.")
        }
    }
}

/// The options' defaults, in one place: the code and the help texts (and so the man page) read them.
enum Defaults {
    static let f = 1
    static let m = 30
    static let q = 3
    static let retries = 0
    static let w = 3.0
    static let t = "0"
    static let l = 40
    static let nameTimeout = 2.0
    static let rate = 2000
    static let format = OutputFormat.text
    static let maxInFlight = 4096
    /// Rounds of `--report` without `-c` (mtr's report default).
    static let reportRounds = 10
    /// Probes per hop with `-c` (mtr sends one per hop per round).
    static let qWithRounds = 1
    /// Pause between the end of a target × port's round and the start of its next, seconds (mtr's `-i`).
    static let roundInterval = 1.0
    /// Continuous mode's receive ring retires a block with replies after this many ms (2 otherwise):
    /// fewer wake-ups of the receive thread; RTTs come from the kernel's stamps either way.
    static let continuousRetireMilliseconds = 8
    /// Rounds per loss and latency window in continuous mode and for per-hop metrics.
    static let changeWindow = 10
}

@main
struct FastTrace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fasttrace",
        abstract: "Port-aware TCP and UDP traceroute for one target or thousands at once.",
        usage: """
            fasttrace [<options>] <host> [<port>]
            fasttrace [<options>] --targets <file> -p <ports>
            """,
        discussion: """
            One target prints like tcptraceroute (port 80 by default; a port may be a service name \
            such as https). A list (a file, or - for stdin) holds addresses, hostnames or CIDR \
            prefixes, one per line, # comments; every target x port is one trace. Lists are paced at \
            --rate probes/s (2000 by default: gentle, and slow for big lists; --rate 20000 is ten times faster).
            Needs root, or CAP_NET_RAW and CAP_BPF (CAP_NET_RAW alone where \
            kernel.unprivileged_bpf_disabled=0; --netns needs root): scripts/install.sh grants them \
            with setcap. All capabilities are dropped once the sockets and filter are open.
            Exit status: \(ExitStatus.summary).
            For this help, fasttrace --help, -h or fasttrace help. Shell completions: fasttrace --generate-completion-script bash|zsh|fish.
            """,
        version: FastTraceVersion.versionLine)

    @Argument(help: ArgumentHelp("Target host (name or IPv4 address) for single-target mode.", valueName: "host"))
    var host: String?

    @Argument(help: ArgumentHelp(
        "Destination port or service name (/etc/services) for single-target mode (default: 80; 53 with -U).",
        valueName: "port"))
    var port: String?

    @Option(name: .customLong("targets"), parsing: .unconditional,
        help: ArgumentHelp("File with one target per line (- for stdin): batch mode.", valueName: "file"),
        completion: .file())
    var targetsFile: String?

    @Option(name: .short, parsing: .unconditional,
        help: ArgumentHelp(
            "Destination port(s), numbers or service names: 443, https, 80,443 or 8000-8010 (default: 80; 53 with -U).",
            valueName: "ports"))
    var p: String?

    @Option(name: .short, parsing: .unconditional,
        help: ArgumentHelp("Send through this interface only (default: the route's).", valueName: "interface"))
    var i: String?

    // Defaults are written into the help texts (and the options are optional, so the parser does not
    // add its own "(default: …)" as well): the man page, made from these texts, states them too.
    @Option(name: .customShort("f"), parsing: .unconditional,
        help: ArgumentHelp("First TTL, 1...255 (default: \(Defaults.f)).", valueName: "ttl"))
    var fOption: Int?
    var f: Int { fOption ?? Defaults.f }

    @Option(name: .customShort("m"), parsing: .unconditional,
        help: ArgumentHelp("Maximum TTL, 1...255 (default: \(Defaults.m)).", valueName: "ttl"))
    var mOption: Int?
    var m: Int { mOption ?? Defaults.m }

    @Option(name: .customShort("q"), parsing: .unconditional,
        help: ArgumentHelp("Probes per hop, 1...8; \(Defaults.qWithRounds) with -c, --report or --interval, as mtr sends one per hop "
            + "per round (default: \(Defaults.q)).", valueName: "probes"))
    var qOption: Int?
    var q: Int { qOption ?? (roundsRequested != nil || intervalOption != nil ? Defaults.qWithRounds : Defaults.q) }

    @Option(name: [.customShort("c"), .customLong("rounds")], parsing: .unconditional, help: ArgumentHelp(
        "Trace every target x port N times, 1...1000000 (mtr's -c), one round \(formatNumber(Defaults.roundInterval)) s "
            + "after the previous one ended, and print a report per target x port: per-hop loss and RTT "
            + "statistics, and where loss and latency start and persist (text, or --format json).",
        valueName: "rounds"))
    var roundsOption: Int?

    @Flag(name: .customLong("report"), help: ArgumentHelp(
        "Print the per-hop report of -c rounds (-c alone prints it too); without -c, \(Defaults.reportRounds) rounds "
            + "(as mtr --report)."))
    var report = false

    /// `--gap`, or its default: 5 for a list, for rounds and for continuous mode (a report of a black hole stops
    /// 5 silent TTLs past the last answer, as a list's trace does, instead of listing `???` to `-m`; a
    /// monitored black hole does not spend -m TTLs every round), 0 for one trace.
    var gapLimit: Int { gap ?? (targetsFile != nil || roundsRequested != nil || intervalOption != nil ? 5 : 0) }

    /// The rounds asked for: `-c`, or `--report`'s default; nil for a single trace per target × port.
    var roundsRequested: Int? { roundsOption ?? (report ? Defaults.reportRounds : nil) }

    @Option(name: .customLong("retries"), parsing: .unconditional, help: ArgumentHelp(
        "Send a probe that got no answer again, up to N times, before printing *; -q x (1+N) <= 8 "
            + "(default: \(Defaults.retries)).", valueName: "n"))
    var retriesOption: Int?
    var retries: Int { retriesOption ?? Defaults.retries }

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Ask a silent hop again up to N times, 1 s then 2 s later, where what the run has seen leaves room "
            + "for an ICMP rate limit: tells rate limiting from silence (default: as many as fit, up to 2; "
            + "0 = never).",
        valueName: "n"))
    var reasks: Int?

    @Option(name: .customShort("w"), parsing: .unconditional,
        help: ArgumentHelp(
            "Seconds to wait for each reply, 0.001 to 60, fractions allowed (default: \(formatNumber(Defaults.w))).",
            valueName: "seconds"))
    var wOption: Double?
    var w: Double { wOption ?? Defaults.w }

    @Option(name: .customShort("t"), parsing: .unconditional,
        help: ArgumentHelp("IP type of service, 0...255, decimal or hex such as 0x10 (default: \(Defaults.t)).",
            valueName: "tos"))
    var tOption: String?
    var t: String { tOption ?? Defaults.t }

    @Option(name: .customShort("l"), parsing: .unconditional,
        help: ArgumentHelp("Total packet length: TCP 40...1500, 40 a bare segment; UDP 30...1500, where DNS and NTP requests "
            + "keep their own length; ICMP echo (-I) 34...1500 (default: \(Defaults.l)).",
            valueName: "bytes"))
    var lOption: Int?
    var l: Int { lOption ?? Defaults.l }

    @Option(name: .short, parsing: .unconditional,
        help: ArgumentHelp("Source address (one of this host's; default: the route's). Targets of the other "
            + "family are refused.", valueName: "address"))
    var s: String?

    @Flag(name: .customShort("4"), help: "Trace IPv4 only: names resolve to their IPv4 address; IPv6 targets are refused.")
    var ipv4Only = false

    @Flag(name: .customShort("6"), help: "Trace IPv6 only: names resolve to their IPv6 address; IPv4 targets are refused.")
    var ipv6Only = false

    /// The family `-4` or `-6` asks for, nil for either.
    var familyOnly: IPFamily? { ipv4Only ? .v4 : ipv6Only ? .v6 : nil }

    @Flag(name: .short, help: "Numeric output: no reverse name lookups (default: names are looked up).")
    var n = false

    @Option(name: .customLong("name-timeout"), parsing: .unconditional, help: ArgumentHelp(
        "Seconds to wait for a hop's reverse name before printing it without one, more than 0 and at most 60 "
            + "(default: \(formatNumber(Defaults.nameTimeout))).",
        valueName: "seconds"))
    var nameTimeoutOption: Double?
    var nameTimeout: Double { nameTimeoutOption ?? Defaults.nameTimeout }

    @Option(name: .customLong("asn-db"), parsing: .unconditionalSingleValue, help: ArgumentHelp(
        "IP-to-AS table (iptoasn.com TSV, CAIDA pfx2as, or PREFIX/LEN ASN lines): AS numbers for hops. "
            + "Repeatable.", valueName: "file"), completion: .file())
    var asnDB: [String] = []

    @Flag(name: .customShort("N"), help: ArgumentHelp(
        "Look up names for RFC 1918 addresses (10/8, 172.16/12, 192.168/16) too, as tcptraceroute -N does; "
            + "by default they are shown as numbers."))
    var namesForPrivate = false

    // Two flags with a text each (an inverted flag pair shares one text, which read "Print …" for
    // --no-dnat in the man page); the last one given wins.
    @Flag(exclusivity: .chooseLast)
    var dnatOption: DNATReport?
    var dnat: Bool { dnatOption == .dnat }

    @Flag(name: .customLong("no-dnat-strict"), help: ArgumentHelp(
        "Ignore ICMP errors whose quote names another destination than the target (tcptraceroute's "
            + "--no-dnat-strict): hops behind a DNAT that leaves quotes untranslated show *."))
    var noDNATStrict = false

    @Flag(name: .customLong("track-port"), help: ArgumentHelp(
        "Match ICMP errors by the TCP header they quote only, not by the quoted IPv4 ID, for paths that "
            + "rewrite the IP ID (tcptraceroute's --track-port; the source port stays fixed)."))
    var trackPort = false

    @Flag(name: .customShort("F"), help: "Set the don't-fragment bit.")
    var dontFragment = false

    @Flag(name: .customShort("T"), help: "Send TCP probes (the default; SYN unless -A or -E).")
    var tcpFlag = false

    @Flag(name: .customShort("U"), help: ArgumentHelp(
        "Send UDP probes to the port (traceroute -U; default port 53): open when the service answers, closed "
            + "when the destination says port unreachable, open|filtered when nothing answers. DNS (53) and "
            + "NTP (123) get a request their service answers; other ports zero bytes up to -l."))
    var udpFlag = false

    @Flag(name: .customShort("I"), help: ArgumentHelp(
        "Send ICMP echo requests (traceroute -I): no port; the destination is reachable when it answers an "
            + "echo reply."))
    var icmpFlag = false

    @Option(name: .customLong("protocol"), parsing: .unconditional, help: ArgumentHelp(
        "Probe protocol: tcp (the default, -T), udp (-U) or icmp (-I).", valueName: "tcp|udp|icmp"))
    var protocolOption: String?

    @Option(name: .customLong("payload-hex"), parsing: .unconditional, help: ArgumentHelp(
        "UDP payload as hex digits, sent to every port instead of the built-in DNS and NTP requests (at most "
            + "1470 bytes; 2 more bytes follow it). Answers to it name no probe: they are counted, not recorded.",
        valueName: "hex"))
    var payloadHex: String?

    @Flag(name: .customShort("S"), help: "Send TCP SYN probes (the default): the port's state is open or closed.")
    var synFlag = false

    @Flag(name: .customShort("A"), help: ArgumentHelp(
        "Send TCP ACK probes (tcptraceroute's -A): a stateful firewall drops them; the destination answers "
            + "RST, so its state is unfiltered (or filtered when nothing answers), never open or closed."))
    var ackFlag = false

    @Flag(name: .customShort("E"), help: ArgumentHelp(
        "Send ECN-setup SYN probes (SYN with ECE and CWR, tcptraceroute's -E), for paths that treat ECN "
            + "differently; states as with SYN."))
    var ecnFlag = false

    @Option(name: .customLong("sport"), parsing: .unconditional,
        help: ArgumentHelp(
            "Source port of every probe (with -I, the ICMP identifier), 1...65535 (default: random in 20000...59999).",
            valueName: "port"))
    var sourcePort: Int?

    @Option(name: .customLong("rate"), parsing: .unconditional,
        help: ArgumentHelp("Probes per second for the whole run, 1...10000000 (default: \(Defaults.rate)). "
            + "That is 0.64 Mbit/s of 40-byte SYNs, meant for busy production hosts; lists go as fast as "
            + "this allows (20,000 lab targets: 4 min at 2000, 31 s at --rate 20000). Raise it as far as your "
            + "uplink and the networks you probe allow.",
            valueName: "probes/s"))
    var rateOption: Int?
    var rate: Int { rateOption ?? Defaults.rate }

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Stop a trace after N silent TTLs in a row past its last answer (in a run that caught rate limiting, "
            + "a TTL a limit may explain does not count); 0 = never (default: 5 in batch mode, with -c or --report and with --interval, 0 for one trace).",
        valueName: "hops"))
    var gap: Int?

    @Option(name: .customLong("format"), parsing: .unconditional, help: ArgumentHelp(
        "Output format: text, json (JSON lines, one object per finished trace), csv (one row per hop) or dot "
            + "(a Graphviz graph of all traces, written at the end) (default: \(Defaults.format.rawValue)).",
        valueName: "format"))
    var formatOption: OutputFormat?
    var format: OutputFormat { formatOption ?? Defaults.format }

    @Option(name: .customLong("max-in-flight"), parsing: .unconditional,
        help: ArgumentHelp("Most traces in flight at once, 1...16384 (default: \(Defaults.maxInFlight)).",
            valueName: "traces"))
    var maxInFlightOption: Int?
    var maxInFlight: Int { maxInFlightOption ?? Defaults.maxInFlight }

    @Option(name: .customLong("max-prefix-addresses"), parsing: .unconditional, help: ArgumentHelp(
        "Largest CIDR prefix a target line may expand to, in addresses (default: "
            + "\(TargetParser.defaultMaxPrefixAddresses), a /16).", valueName: "addresses"))
    var maxPrefixAddressesOption: Int?
    var maxPrefixAddresses: Int { maxPrefixAddressesOption ?? TargetParser.defaultMaxPrefixAddresses }

    @Option(parsing: .unconditional,
        help: ArgumentHelp("Run inside this network namespace (as `ip netns exec NAME` would).", valueName: "name"))
    var netns: String?

    @Flag(help: "Print the summary line even for a single target.")
    var summary = false

    @Option(name: .customLong("plot"), parsing: .unconditional, help: ArgumentHelp(
        "With -c or --report: also draw the reports as an SVG picture in FILE: per target, the RTT at each hop "
            + "(box p25-p75, line p50, whiskers best-p95) above the loss at each hop, the hop that adds latency "
            + "shaded.", valueName: "file.svg"))
    var plotPath: String?

    @Option(name: .customLong("shard"), parsing: .unconditional, help: ArgumentHelp(
        "Trace only shard I of N of the --targets list (1/3, 2/3, 3/3 on three hosts): each target × port is in "
            + "exactly one shard, by a keyed permutation every host computes alike from the list, I/N and "
            + "--shard-seed, with no coordination.", valueName: "I/N"))
    var shardOption: String?

    @Option(name: .customLong("shard-seed"), parsing: .unconditional, help: ArgumentHelp(
        "The key of --shard's permutation: a whole number, decimal or 0x hex, up to 64 bits; every host of the "
            + "split must use the same (default: 0x6661737474726163, \"fasttrac\").", valueName: "seed"))
    var shardSeedOption: String?

    /// `--plot` draws the rounds' reports: refused, in one line, without rounds or without a file name.
    func checkPlot() throws(UsageFailure) {
        guard let plotPath else { return }
        guard roundsRequested != nil else { throw UsageFailure("--plot: draws the rounds' report: give -c N or --report") }
        guard !plotPath.isEmpty else { throw UsageFailure("--plot: needs a file name (FILE.svg)") }
    }

    /// `--shard` with its seed, or nil; the reason in one line when either is not valid (or `--shard` was
    /// given without a list to split).
    func shard() throws(UsageFailure) -> Shard? {
        var seed = Shard.defaultSeed
        if let text = shardSeedOption {
            let hex = text.hasPrefix("0x") || text.hasPrefix("0X")
            guard let value = hex ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text, radix: 10) else {
                throw UsageFailure("--shard-seed: '\(text)' is not a whole number of up to 64 bits (decimal, or hex "
                    + "with 0x)")
            }
            guard shardOption != nil else { throw UsageFailure("--shard-seed: goes with --shard") }
            seed = value
        }
        guard let text = shardOption else { return nil }
        switch Shard.parse(text, seed: seed) {
        case .success(let shard):
            guard targetsFile != nil else {
                throw UsageFailure("--shard: splits a --targets list between hosts; one target is not split")
            }
            return shard
        case .failure(let error): throw UsageFailure("--shard: \(error.reason)")
        }
    }
    @Option(name: .customLong("interval"), parsing: .unconditional, help: ArgumentHelp(
        "Continuous mode: trace every target x port again every SECONDS (0.1...86400), each at its own moment "
            + "of the interval so the list's rounds are spread over it, never a burst; until SIGINT/SIGTERM, "
            + "--count or --duration. SIGHUP re-reads --targets.", valueName: "seconds"))
    var intervalOption: Double?

    @Option(name: .customLong("count"), parsing: .unconditional, help: ArgumentHelp(
        "With --interval: rounds per target x port, 1...1000000 (default: no limit).", valueName: "rounds"))
    var countOption: Int?

    @Option(name: .customLong("duration"), parsing: .unconditional, help: ArgumentHelp(
        "With --interval: start no round after SECONDS (rounds under way finish) (default: no limit).",
        valueName: "seconds"))
    var durationOption: Double?

    @Flag(name: .customLong("changes"), help: ArgumentHelp(
        "With --interval: print only changes, as JSON lines with before and after: path (hop sequence), "
            + "reachability, port state, loss and latency shifts between windows of rounds."))
    var changes = false

    @Option(name: .customLong("change-window"), parsing: .unconditional, help: ArgumentHelp(
        "Rounds per window that loss and latency are compared over (--changes) and that per-hop metrics cover, "
            + "1...10000 (default: \(Defaults.changeWindow)).", valueName: "rounds"))
    var changeWindowOption: Int?
    var changeWindow: Int { changeWindowOption ?? Defaults.changeWindow }

    @Option(name: .customLong("metrics-listen"), parsing: .unconditional, help: ArgumentHelp(
        "Serve Prometheus metrics at http://ADDR:PORT/metrics while the run goes on (:PORT for every "
            + "address; [ADDR]:PORT for IPv6).", valueName: "addr:port"))
    var metricsListen: String?

    @Option(name: .customLong("vantage"), parsing: .unconditional, help: ArgumentHelp(
        "This vantage point's name, on every metric and change event (default: the host name).",
        valueName: "name"))
    var vantageOption: String?

    @Option(name: .customLong("send-path"), parsing: .unconditional, help: ArgumentHelp(
        "How probes leave: ring (a PACKET_TX_RING on the egress interface, one system call per batch; used "
            + "whatever output firewall or ip rules the host has; an error when it cannot be set up), socket (the raw IPv4 socket, sendmmsg), or auto (the ring "
            + "where it can be set up, else the socket) (default: auto).", valueName: "auto|ring|socket"))
    var sendPathOption: SendPathChoice?
    var sendPath: SendPathChoice { sendPathOption ?? .auto }

    @Flag(name: .customLong("verbose"), help: ArgumentHelp(
        "Say on stderr how the run is set up (which send path, and why), and at the end what reached user space."))
    var verbose = false

    /// For scripts/man-page.sh: the exit statuses, one `STATUS<TAB>MEANING` line each, for the man page's
    /// EXIT STATUS section (generate-manual writes only "0 on success, >0 if an error occurs").
    @Flag(name: .customLong("exit-statuses"), help: .private)
    var printExitStatuses = false

    mutating func run() throws {
        do {
            try execute()
        } catch let error as UsageFailure {
            Out.error("fasttrace: \(error.message)")
            throw ExitCode(2)
        } catch let error as SystemError {
            Out.error("fasttrace: \(error)")
            throw ExitCode(1)
        } catch let error as OutputFailure {
            Out.error("fasttrace: \(error.message)")
            throw ExitCode(1)
        } catch let error as SendPathUnavailable {
            Out.error("fasttrace: \(error)")
            throw ExitCode(1)
        }
    }

    /// What to send, from -T/-U/--protocol, the TCP flags and --payload-hex; a contradiction is a usage error.
    private func probeMethod() throws -> ProbeMethod {
        var chosen: [(String, String)] = []  // (protocol, as the user wrote it)
        if tcpFlag { chosen.append(("tcp", "-T")) }
        if udpFlag { chosen.append(("udp", "-U")) }
        if icmpFlag { chosen.append(("icmp", "-I")) }
        if let protocolOption {
            let name = protocolOption.lowercased()
            switch name {
            case "tcp", "udp", "icmp": chosen.append((name, "--protocol \(protocolOption)"))
            default: throw UsageFailure("--protocol: must be tcp, udp or icmp (got '\(protocolOption)')")
            }
        }
        if let other = chosen.first(where: { $0.0 != chosen[0].0 }) {
            throw UsageFailure("\(chosen[0].1) and \(other.1): a run sends one protocol")
        }
        let proto = chosen.first?.0 ?? "tcp"
        if proto != "tcp", let flag = [(synFlag, "-S"), (ackFlag, "-A"), (ecnFlag, "-E")].first(where: { $0.0 })?.1 {
            throw UsageFailure("\(flag) sets TCP flags: not with \(proto.uppercased()) probes")
        }
        if proto != "tcp" && trackPort {
            throw UsageFailure("--track-port: \(proto.uppercased()) probes carry half their tag in the IP ID, so a path that "
                + "rewrites it cannot be traced with them; use TCP (-T)")
        }
        if proto == "icmp" {
            if payloadHex != nil { throw UsageFailure("--payload-hex is for UDP probes (-U)") }
            return .icmpEcho
        }
        if proto == "udp" {
            guard let payloadHex else { return .udp(.byPort) }
            if lOption != nil { throw UsageFailure("-l and --payload-hex: the payload sets the packet's length") }
            return .udp(.fixed(try parsePayloadHex(payloadHex)))
        }
        if payloadHex != nil { throw UsageFailure("--payload-hex is for UDP probes (-U)") }
        switch (synFlag, ackFlag, ecnFlag) {
        case (_, true, true): throw UsageFailure("-A and -E: a probe is an ACK or an ECN-setup SYN, not both")
        case (true, true, _): throw UsageFailure("-S and -A: a probe is a SYN or an ACK, not both")
        case (_, true, _): return .tcp(.ack)
        case (_, _, true): return .tcp(.synECN)
        default: return .tcp(.syn)
        }
    }

    private func execute() throws {
        reserveStandardDescriptors()
        if printExitStatuses {
            Out.raw(ExitStatus.table, fd: 1)
            return
        }
        // First, before anything can take time: a SIGINT or SIGTERM from now on ends the run honestly
        // (reported as interrupted, exit 130), however early it comes.
        installSignalHandlers()
        // A reader that goes away (`| head`) must not kill fasttrace silently: EPIPE comes back from
        // write instead, and is reported like any other failed write of results.
        signal(SIGPIPE, SIG_IGN)
        // 1. Input: everything the user typed is checked before any socket is opened.
        let batch = targetsFile != nil
        if port != nil && p != nil { throw UsageFailure("give the port either after HOST or with -p, not both") }
        let method = try probeMethod()
        var ports: [UInt16] = []
        let isUDP = method.protocolName == "udp"
        if !method.hasPorts {
            // An ICMP echo goes to a host, not a port: each target is traced once.
            if let given = port ?? p { throw UsageFailure(icmpPortRefusal(option: p != nil ? nil : given, batch: batch)) }
        } else { switch TargetParser.parsePortList(port ?? p ?? (isUDP ? "53" : "80"),
            service: isUDP ? udpServicePort : tcpServicePort, serviceProtocol: isUDP ? "UDP" : "TCP") {
        case .success(let list):
            ports = list.ports
            // `-p https,443` is one port: traced once, and said.
            if let note = list.repeatsNote { Out.error("fasttrace: " + (p != nil ? "-p: " : "") + note) }
        case .failure(let error): throw UsageFailure((p != nil ? "-p: " : "") + error.reason)
        } }
        if !method.hasPorts { ports = [0] }
        if !batch && ports.count != 1 { throw UsageFailure("one port per single-target trace; use --targets for more") }
        // -n with -N: -n wins (no lookups at all), as in tcptraceroute.

        var config = EngineConfiguration()
        guard (1...255).contains(f) else { throw UsageFailure("-f: first TTL must be 1...255 (got \(f))") }
        guard (1...255).contains(m) else { throw UsageFailure("-m: max TTL must be 1...255 (got \(m))") }
        guard m >= f else { throw UsageFailure("-m \(m) is below -f \(f)") }
        guard (1...ProbeTag.attemptCount).contains(q) else {
            throw UsageFailure("-q: probes per hop must be 1...\(ProbeTag.attemptCount) (got \(q))")
        }
        // At least 1 ms: the scheduler looks at timeouts once a millisecond, and no reply comes sooner.
        guard w >= 0.001, w <= 60 else {
            throw UsageFailure("-w: wait must be 0.001...60 seconds (got \(formatNumber(w)))")
        }
        let tos: UInt8
        switch parseTOS(t) {
        case .success(let value): tos = value
        case .failure(let error): throw UsageFailure("-t: " + error.reason)
        }
        let lengths = method.kind.minimumLength...method.kind.maximumLength
        guard lengths.contains(l) else {
            throw UsageFailure("-l: packet length must be \(lengths.lowerBound)...\(lengths.upperBound) for "
                + "\(method.protocolName.uppercased()) probes (got \(l))")
        }
        guard rate >= 1 && rate <= 10_000_000 else {
            throw UsageFailure("--rate: must be 1...10000000 probes/s (got \(rate))")
        }
        guard (1...ProbeTag.slotCount).contains(maxInFlight) else {
            throw UsageFailure("--max-in-flight: must be 1...\(ProbeTag.slotCount) (got \(maxInFlight))")
        }
        if let gap, gap < 0 { throw UsageFailure("--gap: must be 0 or more (got \(gap))") }
        let shard = try shard()
        try checkPlot()
        JSONFormatter.shard = shard
        if let sourcePort, !(1...65535).contains(sourcePort) {
            throw UsageFailure("--sport: must be 1...65535 (got \(sourcePort))")
        }
        guard maxPrefixAddresses >= 1 else {
            throw UsageFailure("--max-prefix-addresses: must be 1 or more (got \(maxPrefixAddresses))")
        }
        guard nameTimeout > 0, nameTimeout <= 60 else {
            throw UsageFailure("--name-timeout: must be more than 0 and at most 60 seconds (got \(formatNumber(nameTimeout)))")
        }
        if let roundsOption, !(1...1_000_000).contains(roundsOption) {
            throw UsageFailure("-c: rounds must be 1...1000000 (got \(roundsOption))")
        }
        let rounds = roundsRequested
        if rounds != nil && (format == .csv || format == .dot) {
            throw UsageFailure("\(roundsOption != nil ? "-c" : "--report"): the report is written as text or json, "
                + "not \(format.rawValue)")
        }
        let continuous = try continuousOptions()
        let listen = try metricsListen.map { try MetricsListenAddress.parse($0).get() }
        if batch && host != nil { throw UsageFailure("give either HOST or --targets FILE, not both") }
        if !batch && host == nil { throw UsageFailure("no target: give HOST [PORT] or --targets FILE (see --help)") }
        if ipv4Only && ipv6Only { throw UsageFailure("-4 and -6: give one or the other") }
        var sourceOverride: IPAddress?
        if let s {
            guard let address = IPAddress(s) else { throw UsageFailure("-s: '\(s)' is not an IPv4 or IPv6 address") }
            if let familyOnly, address.family != familyOnly {
                throw UsageFailure("-s \(address) is an \(address.family == .v4 ? "IPv4" : "IPv6") address, and "
                    + "\(familyOnly == .v4 ? "-4" : "-6") traces \(familyOnly == .v4 ? "IPv4" : "IPv6") only")
            }
            sourceOverride = address
        }

        // One target is parsed here; a list is read as a stream once the namespace and routes are known.
        var singleTarget: TargetSpec?
        if let host, host.lowercased() == "help" {
            // `fasttrace help` alone prints the help (main); with more arguments it is refused rather
            // than looked up as a host named help.
            throw UsageFailure("'\(host)' is not taken as a host name: for the help, use --help; a host named "
                + "\(host) can be given as '\(host).'")
        }
        if let host {
            // A prefix is a list of targets: say where it belongs rather than quote a cap it cannot meet.
            if host.contains("/") && !host.contains(" ") {
                throw UsageFailure("'\(host)' is a prefix: give it in a --targets list (one target per HOST)")
            }
            switch TargetParser.parseTarget(Substring(host), maxPrefixAddresses: 1) {
            case .success(let spec): singleTarget = spec
            case .failure(let error): throw UsageFailure(error.reason)
            }
            // `2001:db8::1:443` with no port given: traced as written (it is an address), and said, since a
            // port appended as IPv4 writes it looks just like this.
            if port == nil && p == nil && method.hasPorts, let (address, suffix) = TargetParser.portLikeSuffix(Substring(host)) {
                Out.error("fasttrace: note: '\(host)' is one IPv6 address, traced as written, to port \(ports[0]); "
                    + "for port \(suffix) of \(address), give the port apart: fasttrace \(address) \(suffix)")
            }
        }

        config.firstTTL = UInt8(f)
        config.maxTTL = UInt8(m)
        config.probesPerHop = q
        guard retries >= 0 else { throw UsageFailure("--retries: must be 0 or more (got \(retries))") }
        guard q * (1 + retries) <= ProbeTag.attemptCount else {
            throw UsageFailure(
                "--retries: -q × (1 + retries) must be at most \(ProbeTag.attemptCount) (got \(q) × (1 + \(retries)))")
        }
        config.retries = retries
        if let reasks {
            guard reasks >= 0 else { throw UsageFailure("--reasks: must be 0 or more (got \(reasks))") }
            guard q * (1 + retries + reasks) <= ProbeTag.attemptCount else {
                throw UsageFailure("--reasks: -q × (1 + retries + reasks) must be at most \(ProbeTag.attemptCount) "
                    + "(got \(q) × (1 + \(retries) + \(reasks)))")
            }
            config.reasks = reasks
        }
        config.waitNanos = UInt64(w * 1e9)
        config.tos = tos
        config.matchQuotedIPID = !trackPort
        config.acceptTranslatedQuotes = !noDNATStrict
        config.packetLength = l
        config.dontFragment = dontFragment
        config.method = method
        config.rate = rate
        config.gapLimit = gapLimit
        config.maxInFlight = maxInFlight
        // Rounds of one target run one after another, each in a slot of its own while the last one rests
        // (the wait + 0.5 s): enough slots that the rest never holds a round back.
        if !batch { config.expectedTraces = rounds.map { min($0, Int((w + 0.5) / Defaults.roundInterval) + 2) } ?? 1 }
        if continuous != nil { config.pollIntervalNanos = EngineConfiguration.continuousPollNanos(rate: rate) }
        if !batch, let continuous {
            config.expectedTraces = min(continuous.maxRounds ?? Int.max, Int((w + 0.5) / continuous.interval) + 2)
        }
        config.sourcePort = UInt16(sourcePort ?? Int.random(in: 20000...59999))
        if let problem = config.problem { throw UsageFailure(problem) }

        // The AS table, read before anything is set up: a file that cannot be used is bad input.
        let asnTable = asnDB.isEmpty ? nil : try loadASNTable(asnDB)

        // 2. The system: namespace, privileges, routes, sockets.
        if let problem = Privileges.check(entersNamespace: netns != nil) { throw UsageFailure(problem) }
        if let netns, let problem = enterNamespace(netns) { throw problem }
        let routes = try RouteTable.load()
        let routes6 = try RouteTable6.load()
        if let sourceOverride,
            !(sourceOverride.ipv4.map(routes.sourceAddressExists) ?? routes6.sourceAddressExists(sourceOverride))
        {
            throw UsageFailure("-s: \(sourceOverride) is not an address of this host")
        }
        // -i: probes really leave through that interface (the transport binds its raw socket to it), so
        // routes are looked up as the kernel does for a bound socket: only those through it.
        var pathRoutes = routes
        var pathRoutes6 = routes6
        if let i {
            guard let index = routes.interfaceIndex(named: i) else { throw UsageFailure("-i: no interface named '\(i)'") }
            guard routes.firstAddress(ofInterface: i) != nil
                || routes6.addresses.contains(where: { $0.interfaceIndex == index && $0.usable })
            else {
                throw UsageFailure("-i: interface '\(i)' has no IPv4 or global IPv6 address")
            }
            pathRoutes = routes.restricted(toInterface: index)
            pathRoutes6 = routes6.restricted(toInterface: index)
        }
        // The route each target's probes take; a target whose route cannot use -i or -s is refused
        // (one target: exit 2; a list: skipped with its line), never probed into silence.
        // No host has a multicast, reserved or broadcast address (nor an on-link prefix's network
        // address): such a target is refused before any route is looked up (a name that resolves to
        // 0.0.0.0, a wide prefix, a literal the parser let through as a hostname never could).
        let hostCheck = HostAddressCheck(onLink: routes.addresses.map {
            .init(address: IPAddress($0.address), length: $0.prefixLength,
                interface: routes.interfaceNames[$0.interfaceIndex] ?? "interface \($0.interfaceIndex)")
        } + routes6.addresses.map {
            .init(address: $0.address, length: $0.prefixLength,
                interface: routes6.interfaceNames[$0.interfaceIndex] ?? "interface \($0.interfaceIndex)")
        })
        let familyOnly = familyOnly
        let routeFor: @Sendable (IPAddress) -> Result<Route, ReasonError> = {
            [pathRoutes, pathRoutes6, i, sourceOverride] destination in
            if let problem = hostCheck.problem(destination) { return .failure(ReasonError(problem)) }
            let family = destination.family == .v4 ? "IPv4" : "IPv6"
            if let familyOnly, destination.family != familyOnly {
                return .failure(ReasonError("an \(family) address, and \(familyOnly == .v4 ? "-4" : "-6") traces "
                    + "\(familyOnly == .v4 ? "IPv4" : "IPv6") only"))
            }
            if let sourceOverride, sourceOverride.family != destination.family {
                return .failure(ReasonError("an \(family) address, and -s \(sourceOverride) is not"))
            }
            let found: Route?, anyInterface: Route?
            if let v4 = destination.ipv4 {
                (found, anyInterface) = (pathRoutes.lookup(v4), i == nil ? nil : routes.lookup(v4))
            } else {
                (found, anyInterface) = (pathRoutes6.lookup(destination), i == nil ? nil : routes6.lookup(destination))
            }
            guard let route = found else {
                if let i, anyInterface != nil { return .failure(ReasonError("no route through \(i) (-i \(i))")) }
                return .failure(ReasonError("no route to host"))
            }
            if let sourceOverride {
                let problem = sourceOverride.ipv4.map { routes.problem(source: $0, on: route) }
                    ?? routes6.problem(source: sourceOverride, on: route)
                if let problem { return .failure(ReasonError("-s \(sourceOverride) cannot be used: \(problem)")) }
            }
            return .success(route)
        }
        let sourceFor: TargetResolution.SourceFor = { destination in
            routeFor(destination).map { sourceOverride ?? $0.source }
        }

        // A list: read, parsed and resolved on other threads while the engine runs (TargetStream).
        var stream: TargetStream?
        let listNotices = NoticeLimit(limit: 10)
        // The list's reader, the same at the start and at every SIGHUP re-read (continuous mode): the shard,
        // the family (-4/-6) and the source apply to a re-read list as to the first.
        let makeTargetStream: (String) throws(SystemError) -> TargetStream = { [sourceOverride] path throws(SystemError) in
            try TargetStream(path: path, ports: ports, maxPrefixAddresses: maxPrefixAddresses,
                shard: shard, resolve: { resolveHostname($0, family: familyOnly) }, sourceFor: { destination in
                    routeFor(destination).map { sourceOverride ?? $0.source }
                })
        }
        if let targetsFile {
            do {
                stream = try makeTargetStream(targetsFile)
            } catch {
                throw UsageFailure("cannot read target file '\(targetsFile)': \(String(cString: strerror(error.errno)))")
            }
            // One line per skipped line, skipped target or duplicate, up to `listNotices.limit`; the rest are
            // counted (in the summary) and said to be there, so a garbage file cannot flood stderr.
            stream!.onSkip = { [listNotices] skip in
                guard listNotices.admit() else { return }
                let what = switch skip.kind {
                case .line: "line skipped"
                case .targets: "skipped"
                case .duplicates: "duplicate dropped"
                }
                Out.error("fasttrace: \(targetsFile):\(skip.line): \(skip.reason) (\(what))")
            }
        }

        var transportConfiguration = LinuxTransport.Configuration(
            sourcePorts: config.sourcePort...config.sourcePort, interfaceName: i,
            ring: .sized(forRate: rate, retireTimeoutMilliseconds: continuous != nil ? Defaults.continuousRetireMilliseconds
                : RingGeometry.default.retireTimeoutMilliseconds),
            sendPath: sendPath, routes: pathRoutes, routes6: pathRoutes6)
        transportConfiguration.probeProtocol = config.method.kind.protocolNumber
        // A run that can trace one family only (-4, -6, or one address) sets the ring up for that family's
        // routes, and names only that family's next hops and firewall rules.
        var onlyFamily = familyOnly
        if case .address(let address) = singleTarget { onlyFamily = address.family }
        if onlyFamily == .v6 { transportConfiguration.sendsIPv4 = false }
        if onlyFamily == .v4 { transportConfiguration.sendsIPv6 = false }
        let transport = try LinuxTransport(configuration: transportConfiguration)
        // The metrics endpoint's socket and --plot's file are opened here too, while the run may still
        // bind a port below 1024 and write where root may: after the drop it could not, and a picture
        // that cannot be written is said now, not after the rounds.
        let listenSocket = try listen.map { try $0.listeningSocket().get() }
        let plotFile = try plotPath.map { path throws(UsageFailure) in
            // Not emptied yet: a run refused after this (a target that cannot be traced) leaves it as it was.
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw UsageFailure("--plot \(path): cannot write: \(SystemError.errnoText(errno))") }
            return PlotFile(path: path, descriptor: fd)
        }
        // Sockets, ring and filter are open (and the list's file, which root may need its privileges to
        // read): from here on nothing needs a capability. Before any thread starts (capabilities are
        // per thread) and before any name is looked up or any output written.
        try Privileges.dropAll()
        if verbose { Out.error("fasttrace: send path: \(transport.sendPath.detail)") }
        sendPathSummary = transport.sendPath

        // Single-target mode resolves its one target up front: an unresolvable name or a missing route
        // is an error, not a skip, and the header line needs the route.
        var singleRequest: TraceRequest?
        if let singleTarget {
            switch TargetResolution.single(singleTarget, port: ports[0],
                resolve: { resolveHostname($0, family: familyOnly) }, sourceFor: sourceFor)
            {
            case .success(let request): singleRequest = request
            case .failure(let error):
                Out.error("fasttrace: \(error.reason)")
                throw ExitCode(2)
            }
        }
        let clock = SystemClock()
        let engine = TraceEngine(configuration: config, transport: transport, clock: clock)
        // Hop names are looked up by resolver threads (started at the first lookup, from this thread, so
        // they share its namespace and its dropped capabilities); finished output waits in `stage`
        // until its names are in. As in tcptraceroute, RFC 1918 addresses are not looked up without -N.
        let resolver = n ? nil : NameResolver(waitNanos: UInt64(nameTimeout * 1e9))
        defer { resolver?.stop() }
        let stage = OutputStage(resolver: resolver, asnTable: asnTable,
            looksUp: { [namesForPrivate] in looksUpName(of: $0, includePrivate: namesForPrivate) })
        // Polled every scheduler turn: output whose names are in is written, results waiting more than
        // ~100 ms go out, and a failed write of results stops the run like an interrupt (reported and
        // exit 1 after the engine returns).
        engine.shouldCancel = {
            stage.drain()
            Out.flushIfDue()
            return cancelRequested.load(ordering: .relaxed) || Out.writeError != nil
        }

        let text = TextFormatter(showDNAT: dnat, method: config.method)
        var lastProgress = ""
        let progress = batch && isatty(2) == 1

        if let vantageOption { JSONFormatter.vantage = vantageOption }
        // --metrics-listen: the registry and its server, up before the first probe.
        let metrics = listen.map { _ in RunMetrics(vantage: vantage) }
        var server: MetricsServer?
        defer { server?.stop() }
        if let listenSocket, let metrics {
            do {
                server = try MetricsServer(boundSocket: listenSocket, metrics: metrics)
            } catch {
                throw UsageFailure("--metrics-listen \(metricsListen ?? ""): cannot serve: \(error)")
            }
            Out.error("fasttrace: metrics at http://\(server!.boundAddress)/metrics")
        }
        let tracker = ChangeTracker(windowRounds: changeWindow, firstTTL: config.firstTTL)
        if let metrics {
            // The engine's counters about once a second, on its own thread (see `liveCounters`).
            var lastUpdate: UInt64 = 0
            let cancel = engine.shouldCancel
            engine.shouldCancel = { [engine] in
                let now = Out.monotonicNanos()
                if now &- lastUpdate >= 1_000_000_000 {
                    lastUpdate = now
                    metrics.update(engine.liveCounters)
                }
                return cancel()
            }
            if let stream {
                let onSkip = stream.onSkip
                stream.onSkip = { skip in
                    if skip.kind != .duplicates { metrics.count(skip.kind == .line ? .skippedLine : .skippedTarget) }
                    onSkip(skip)
                }
            }
        }

        // Metrics of a run that is not continuous: every trace (every round of -c) feeds them.
        let observe: ((TraceResult) -> Bool)? = metrics.map { metrics in
            { trace in
                _ = tracker.add(trace)
                metrics.record(trace, tracker: tracker)
                return false
            }
        }

        if let continuous {
            try runContinuous(continuous, engine: engine, clock: clock, stream: stream, single: singleRequest,
                text: text, stage: stage, tracker: tracker, metrics: metrics, listNotices: listNotices,
                makeStream: { try makeTargetStream(targetsFile ?? "-") })
            return
        }

        var singleFinished: (TraceResult) -> Void = { _ in }
        if let request = singleRequest {
            // The device the probes actually leave through (the route sourceFor accepted).
            let device = (try? routeFor(request.destination).get())?.interfaceName ?? i ?? "?"
            let service = serviceName(request.port, protocol: config.method.protocolName).map { " (\($0))" } ?? ""
            let target = request.name.map { "\($0) (\(request.destination))" } ?? request.destination.description
            if format == .text && rounds == nil {
                // ICMP echo carries the run's identifier where TCP and UDP carry its source port.
                let sport = config.method.hasPorts ? "port" : "identifier"
                Out.line("Selected device \(device), address \(request.source), \(sport) \(config.sourcePort) for outgoing packets")
                let probes = switch config.method.tcpFlags {
                case .ack: " with ACK probes"
                case .synECN: " with ECN-setup SYN probes"
                case .syn, nil: ""
                }
                let toward = config.method.hasPorts
                    ? "on \(config.method.protocolName.uppercased()) port \(request.port)\(service)" : "with ICMP echo"
                Out.line("Tracing the path to \(target) \(toward)\(probes), "
                    + "\(config.maxTTL) hops max")
                try Out.finish()
                var lastTranslation: IPAddress?
                var submittedThrough: UInt8 = 0
                // Each hop line is printed once its names are in (at most the name timeout after the hop
                // settled), in TTL order.
                var printedPlaced: Set<UInt8> = []
                engine.onHop = { _, hop in
                    submittedThrough = hop.ttl
                    if hop.probes.contains(where: { $0.sentTTL != nil }) { printedPlaced.insert(hop.ttl) }
                    stage.submit(addresses: hop.responders) { annotator in
                        for line in text.hopLines(hop, annotator, lastTranslation: &lastTranslation) { Out.line(line) }
                        Out.flush()
                    }
                }
                // Interrupted: the hops not yet settled, with `?` for probes not waited for, and a
                // line saying the trace is incomplete.
                singleFinished = { result in
                    if result.answerUnmatched {
                        stage.submit(addresses: EmptyCollection()) { _ in
                            Out.line("An answer came from \(request.destination) port \(request.port), but it names no probe, "
                                + "so it cannot be told from a forged one: likely open, at a TTL not known")
                        }
                    }
                    // An answer placed at a hop already printed (an unreachable whose quote says its router
                    // sits nearer than the probe's TTL, arriving after that hop settled): that hop again,
                    // with it, so the reason the trace stopped is on screen.
                    for hop in result.hops where hop.ttl <= submittedThrough && !printedPlaced.contains(hop.ttl)
                        && hop.probes.contains(where: { $0.sentTTL != nil })
                    {
                        stage.submit(addresses: hop.responders) { annotator in
                            var none: IPAddress?
                            for line in text.hopLines(hop, annotator, lastTranslation: &none) { Out.line(line) }
                        }
                    }
                    guard result.stopReason == .interrupted else { return }
                    for hop in result.hops where hop.ttl > submittedThrough {
                        stage.submit(addresses: hop.responders) { annotator in
                            for line in text.hopLines(hop, annotator, lastTranslation: &lastTranslation) {
                                Out.line(line)
                            }
                        }
                    }
                    stage.submit(addresses: EmptyCollection()) { _ in
                        Out.line("Interrupted: the trace is incomplete (? = no verdict yet: a probe or re-ask was still waiting)")
                    }
                }
            }
            var one = IteratorRequestSource(CollectionOfOne(request).makeIterator())
            var reported = false
            let report = singleFinished
            let summaryLine: String, run: RunSummary
            if let rounds {
                var repeated = RoundsSource(one, rounds: rounds, intervalNanos: UInt64(Defaults.roundInterval * 1e9),
                    clock: clock)
                let source = repeated
                (summaryLine, run) = try runEngine(engine, source: &repeated, text: text, stage: stage,
                    rounds: { reported = true; return source.finished($0).last },
                    reporter: RoundsReporter(rounds: rounds, format: format, stage: stage, firstTTL: config.firstTTL,
                        plot: plotFile.map(PlotBook.init(file:))),
                    observe: observe)
            } else {
                (summaryLine, run) = try runEngine(engine, source: &one, text: text, stage: stage,
                    single: { reported = true; report($0) }, observe: observe)
            }
            let interrupted = cancelRequested.load(ordering: .relaxed)
            if format == .text && !reported && interrupted {
                // Interrupted before the trace was under way: say so rather than end on the header.
                Out.line("Interrupted before any probe was sent")
                try Out.finish()
            }
            // Not reached (no SYN-ACK or RST from the target): tcptraceroute's closing line on stderr,
            // and exit 1, so a script can tell.
            // Rounds: a report of the rounds there are, interrupted or not, says it too (the exit status of an
            // interrupted run stays 130). A single trace cut short has found nothing to say it of.
            let notReached = (rounds != nil || !interrupted) && run.traces >= 1 && run.reached == 0
            if notReached && format == .text { Out.error("Destination not reached") }
            if summary { Out.error(summaryLine) }
            if (notReached || plotWriteFailed) && !interrupted { throw ExitCode(1) }
        } else if let stream {
            var rate = RecentRate()
            engine.onProgress = { p in
                guard progress else { return }
                // The total: counted ahead for a regular file, known at the end for a pipe.
                let now = Int(rate.update(probes: p.probesSent, at: Out.monotonicNanos()))
                let line = progressText(finished: p.finished, total: stream.totalSoFar, inFlight: p.inFlight,
                    probes: p.probesSent, perSecond: now)
                if line != lastProgress { Out.showProgress(line); lastProgress = line }
            }
            try stream.start()
            var source = stream
            let summaryLine: String
            do {
                defer { stream.cancel() }
                if let rounds {
                    var repeated = RoundsSource(source, rounds: rounds,
                        intervalNanos: UInt64(Defaults.roundInterval * 1e9), clock: clock)
                    let wrapper = repeated
                    summaryLine = try runEngine(engine, source: &repeated, text: text, stage: stage,
                        rounds: { wrapper.finished($0).last },
                        reporter: RoundsReporter(rounds: rounds, format: format, stage: stage, firstTTL: config.firstTTL,
                        plot: plotFile.map(PlotBook.init(file:))),
                        observe: observe).line
                } else {
                    summaryLine = try runEngine(engine, source: &source, text: text, stage: stage, observe: observe).line
                }
            }
            Out.endProgress()
            let skipped = stream.skipped, linesSkipped = stream.linesSkipped, duplicates = stream.duplicates
            let interrupted = cancelRequested.load(ordering: .relaxed)
            if stream.readError == nil && !interrupted && stream.produced == 0 && skipped == 0 && linesSkipped == 0
                && duplicates == 0
            {
                try emptyList(stream)
                return
            }
            if listNotices.held > 0 {
                Out.error("fasttrace: \(stream.sourceName): … and \(counted(listNotices.held, "more notice")) of "
                    + "skipped lines, targets or duplicates, not shown (counted in the summary)")
            }
            if stream.duplicateCheckFull {
                Out.error("fasttrace: \(stream.sourceName): more than \(SeenTargets().limit) distinct addresses: "
                    + "repeats of the later ones were not recognised and were traced again")
            }
            var tail = ""
            if linesSkipped > 0 { tail += ", \(counted(linesSkipped, "line")) skipped" }
            if skipped > 0 { tail += ", \(counted(skipped, "target")) skipped" }
            if duplicates > 0 { tail += ", \(counted(duplicates, "duplicate target")) dropped" }
            // Nothing could be traced (every line skipped, or every target refused: no route, -i/-s
            // unusable, unresolvable): bad input, exit 2. Or the list could not be read before its first
            // target. Either way the run ends on that error, and a summary of nothing traced ("0 traces,
            // 0 reached, …") before it would only hide it.
            let nothingTraceable = !interrupted && stream.produced == 0 && skipped + linesSkipped > 0
            let unreadable = !interrupted && stream.produced == 0 && stream.readError != nil
            if !nothingTraceable && !unreadable { Out.error(summaryLine + tail) }
            // A failed read ends the reading; what was before it has been traced.
            if let readError = stream.readError { throw readError }
            if nothingTraceable {
                let what = linesSkipped == 0 ? "\(skipped)"
                    : [counted(linesSkipped, "line"), skipped > 0 ? counted(skipped, "target") : nil]
                        .compactMap { $0 }.joined(separator: " and ")
                throw UsageFailure("\(stream.sourceName): no target could be traced (\(what) skipped)")
            }
            if plotWriteFailed && !interrupted { throw ExitCode(ExitStatus.notReachedOrFailed.rawValue) }
            // Some of the list was left out: the traces ran, and the status says they are not all of it.
            if !interrupted && skipped + linesSkipped > 0 { throw ExitCode(ExitStatus.partlySkipped.rawValue) }
        }
        if cancelRequested.load(ordering: .relaxed) { throw ExitCode(ExitStatus.interrupted.rawValue) }
    }

    func runEngine<Source: TraceRequestSource>(
        _ engine: TraceEngine, source: inout Source, text: TextFormatter, stage: OutputStage,
        single: @escaping (TraceResult) -> Void = { _ in },
        rounds: ((TraceResult) -> Bool)? = nil, reporter: RoundsReporter? = nil,
        observe: ((TraceResult) -> Bool)? = nil
    ) throws -> (line: String, summary: RunSummary) {
        let format = self.format
        let batch = targetsFile != nil || intervalOption != nil
        let csv = CSVFormatter(probesPerHop: q, names: !n, asn: stage.showsASN)
        let graph = TraceGraph()
        if format == .csv { Out.append(csv.writeHeader) }
        engineStarted.store(true, ordering: .relaxed)
        let result = try engine.run(source: &source) { trace in
            // Continuous mode's schedule, change events and metrics see every trace first; they may keep
            // it from the output (--changes).
            if let observe, observe(trace) { return }
            // Rounds: each finished round goes into its target × port's statistics; the report is written
            // after the last one.
            if let rounds, let reporter {
                reporter.add(trace, last: rounds(trace))
                return
            }
            // Written once its hops' names are in (stage); buffered: the buffer goes out when full, every
            // ~100 ms (shouldCancel) and at the end.
            let addresses = trace.responders
            switch format {
            case .json:
                // The wall-clock start is fixed now, with the clocks' offset as the trace finishes.
                let start = trace.startNanos.map { Out.wallNanos(monotonic: $0) }
                stage.submit(addresses: addresses) { Out.json(trace, start: start, $0) }
            case .csv: stage.submit(addresses: addresses) { annotator in Out.append { csv.write(trace, annotator, into: &$0) } }
            case .dot: stage.submit(addresses: addresses) { graph.add(trace, $0) }
            case .text:
                if batch {
                    stage.submit(addresses: addresses) { Out.line(text.block(trace, $0)) }
                } else {
                    single(trace)
                }
            }
        }
        // Interrupted between rounds: the target × ports not finished are reported with the rounds they have.
        reporter?.finishAll()
        // Traces still waiting for names: each goes out when they are in, at its deadline at the latest,
        // or at once on an interrupt or a failed write.
        stage.finish(cancelled: { cancelRequested.load(ordering: .relaxed) || Out.writeError != nil },
            tick: { Out.flushIfDue() })
        // The graph needs every trace: it is written once the run is over (also after an interruption).
        if format == .dot { Out.append(graph.write) }
        try Out.finish()
        // The picture of every report (also after an interruption: the rounds there are); a failed write is
        // one line, and exit status 1 once the run has said the rest.
        if let plot = reporter?.plot, let failure = plot.write() {
            Out.error("fasttrace: \(failure)")
            plotWriteFailed = true
        }
        // Said once, at the end of the run (see `ipIDRewriteHint`), before the summary line.
        if let hint = ipIDRewriteHint(result.dispatch) { Out.error(hint) }
        if let hint = sendRefusalHint(result.transport, packetLength: engine.configuration.packetLength,
            method: engine.configuration.method) { Out.error(hint) }
        if verbose { Out.error(receiveLine(result)) }
        return (summaryLine(result, rate: engine.configuration.rate, maxInFlight: engine.configuration.maxInFlight,
            method: engine.configuration.method, sendPath: sendPathSummary, rounds: reporter != nil || intervalOption != nil),
            result)
    }
}

/// Why a port given with `-I` is refused: ICMP echo has no port. `given` is a positional PORT (nil for
/// `-p`); with `--targets` the advice is to leave `-p` out (each target is traced once), not to give "the
/// host alone", which a list has no place for.
func icmpPortRefusal(option given: String?, batch: Bool) -> String {
    let what = given.map { "port '\($0)'" } ?? "-p"
    return batch ? "\(what): ICMP echo (-I) has no port: each target of the list is traced once; leave \(given == nil ? "-p" : "the port") out"
        : "\(what): ICMP echo (-I) has no port; give the host alone"
}

/// `n` and the noun, singular for 1: "1 trace", "2 traces".
func counted(_ n: Int, _ singular: String, _ plural: String? = nil) -> String {
    "\(n) \(n == 1 ? singular : plural ?? singular + "s")"
}

/// A problem with what the user asked for: one line, exit status 2.
/// A list that gave no target: one line and exit 0 when every target × port of it is in other shards
/// (`--shard`: a shard may be empty), bad input (exit 2) otherwise.
func emptyList(_ stream: TargetStream) throws {
    guard let shard = JSONFormatter.shard, stream.inOtherShards > 0 else {
        throw UsageFailure("\(stream.sourceName): no targets")
    }
    Out.error("fasttrace: \(stream.sourceName): no target x port of it is in shard \(shard) "
        + "(\(stream.inOtherShards) in the others): nothing to trace")
    try Out.finish()
}

struct UsageFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

func formatSeconds(_ s: Double) -> String {
    // A run of a few milliseconds is not "0.00 s" beside a rate of hundreds of probes per second.
    if s > 0 && s < 0.095 { return formatRate(s) }
    let tenths = Int((s * 100).rounded())
    return "\(tenths / 100).\(tenths % 100 < 10 ? "0" : "")\(tenths % 100)"
}

/// Enters network namespace `name`; a usage failure for a name that does not exist, rethrows the rest.
func enterNamespace(_ name: String) -> Error? {
    let result = Result { () throws(SystemError) in try enterNetworkNamespace(named: name) }
    guard case .failure(let error) = result else { return nil }
    if error.errno == ENOENT || error.errno == EINVAL {
        return UsageFailure("--netns: no network namespace named '\(name)' (see `ip netns list`)")
    }
    return error
}

/// The run's send path, for the summary line (set once the transport is open).
nonisolated(unsafe) var sendPathSummary: SendPathReport?

/// Set just before the engine runs. Until then nothing has been probed or written, and set-up may be
/// blocked in a call that a signal does not end (a name lookup, reading a file): an interrupt then
/// ends the process at once, saying so.
let engineStarted = Atomic<Bool>(false)

/// Opens /dev/null on any of descriptors 0, 1 and 2 the process was started without (`>&-`), so that
/// none of the run's sockets is given one of those numbers: results written to "standard output" must
/// never go to a raw socket, nor a probe's bytes to the terminal. With 1 or 2 closed, what would have
/// been written there is lost, as the caller asked; the exit status still says how the run went.
func reserveStandardDescriptors() {
    for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
        let opened = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY)
        // open takes the lowest free number, which is `fd` (those below it are open by now).
        if opened >= 0 && opened != fd { close(opened) }
    }
}

func installSignalHandlers() {
    let handler: @convention(c) (Int32) -> Void = { _ in
        cancelRequested.store(true, ordering: .relaxed)
        guard !engineStarted.load(ordering: .relaxed) else { return }
        // Async-signal-safe: one write and _exit.
        let message: StaticString = "fasttrace: interrupted before any probe was sent\n"
        _ = write(2, message.utf8Start, message.utf8CodeUnitCount)
        _exit(130)
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
}
