// The command line: tcptraceroute's options and output for one target, plus batch mode for many
// targets × ports with JSON lines, a progress line and a summary. All checks of user input happen here,
// before a packet is sent; each failure is one line saying what and where.

import ArgumentParser
import FastTraceCore
import FastTraceLinux
import FastTraceWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Set by SIGINT/SIGTERM; the engine then reports what it has and stops.
let cancelRequested = Atomic<Bool>(false)

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, csv, dot
}

@main
struct FastTrace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fasttrace",
        abstract: "Port-aware TCP traceroute for one target or thousands at once.",
        discussion: """
            fasttrace HOST [PORT]                      one target, tcptraceroute-style (port 80 by default)
            fasttrace --targets FILE -p PORT[,PORT…]   many targets (FILE or - for stdin: addresses, \
            hostnames or CIDR prefixes, one per line, # comments)
            Needs root, or CAP_NET_RAW plus CAP_BPF (or CAP_NET_ADMIN).
            """)

    @Argument(help: "Target host (name or IPv4 address) for single-target mode.")
    var host: String?

    @Argument(help: "Destination port for single-target mode (default 80).")
    var port: String?

    @Option(name: .customLong("targets"), help: "File with one target per line (- for stdin): batch mode.")
    var targetsFile: String?

    @Option(name: .short, help: "Destination port(s): 443, 80,443 or 8000-8010 (default 80).")
    var p: String?

    @Option(name: .short, help: "Interface to send from (its first address is the source).")
    var i: String?

    @Option(name: .short, help: "First TTL (default 1).")
    var f: Int = 1

    @Option(name: .short, help: "Maximum TTL (default 30).")
    var m: Int = 30

    @Option(name: .short, help: "Probes per hop, 1...8 (default 3).")
    var q: Int = 3

    @Option(help: "Send a probe that got no answer again, up to N times, before printing * (default 0; -q × (1+N) ≤ 8).")
    var retries: Int = 0

    @Option(help: "Ask a silent hop again up to N times, 1 s then 2 s later, where a router answers ICMP at that position for other traces: tells ICMP rate limiting from silence (default: as many as fit, up to 2; 0 = never).")
    var reasks: Int?

    @Option(name: .short, help: "Seconds to wait for each reply (default 3).")
    var w: Double = 3

    @Option(name: .short, help: "IP type of service, 0...255 (default 0).")
    var t: Int = 0

    @Option(name: .short, help: "Total packet length in bytes, 40...1500 (default 40: a bare SYN).")
    var l: Int = 40

    @Option(name: .short, help: "Source address (must belong to this host).")
    var s: String?

    @Flag(name: .short, help: "Numeric output: no reverse name lookups.")
    var n = false

    @Option(help: "Seconds to wait for a hop's reverse name before printing it without one (default 2).")
    var nameTimeout: Double = 2

    @Option(name: .customLong("asn-db"), help: "IP-to-AS table (iptoasn.com TSV, CAIDA pfx2as, or PREFIX/LEN ASN lines): AS numbers for hops. Repeatable.")
    var asnDB: [String] = []

    @Flag(help: "Print \"Detected DNAT to ADDR\" where a router's quote shows the destination was rewritten.")
    var dnat = false

    @Flag(name: .customShort("F"), help: "Set the don't-fragment bit.")
    var dontFragment = false

    @Option(name: .customLong("sport"), help: "Source port of every probe (default: random in 20000...59999).")
    var sourcePort: Int?

    @Option(help: "Probes per second, whole run (default 2000).")
    var rate: Int = 2000

    @Option(help: "Stop a trace after N consecutive silent hops; 0 = never (default 5 in batch mode, 0 for one target).")
    var gap: Int?

    @Option(help: "Output format: text, json (JSON lines, one object per finished trace), csv (one row per hop) or dot (a Graphviz graph of all traces, written at the end).")
    var format: OutputFormat = .text

    @Option(help: "Most traces in flight at once, 1...16384 (default 4096).")
    var maxInFlight: Int = 4096

    @Option(help: "Largest CIDR prefix a target line may expand to, in addresses (default 65536: a /16).")
    var maxPrefixAddresses: Int = TargetParser.defaultMaxPrefixAddresses

    @Option(help: "Run inside this network namespace (as `ip netns exec NAME` would).")
    var netns: String?

    @Flag(help: "Print the summary line even for a single target.")
    var summary = false

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
        }
    }

    private func execute() throws {
        // First, before anything can take time: a SIGINT or SIGTERM from now on ends the run honestly
        // (reported as interrupted, exit 130), however early it comes.
        installSignalHandlers()
        // A reader that goes away (`| head`) must not kill fasttrace silently: EPIPE comes back from
        // write instead, and is reported like any other failed write of results.
        signal(SIGPIPE, SIG_IGN)
        // 1. Input: everything the user typed is checked before any socket is opened.
        let batch = targetsFile != nil
        if batch && host != nil { throw UsageFailure("give either HOST or --targets FILE, not both") }
        if !batch && host == nil { throw UsageFailure("no target: give HOST [PORT] or --targets FILE (see --help)") }
        if port != nil && p != nil { throw UsageFailure("give the port either after HOST or with -p, not both") }
        let ports: [UInt16]
        switch TargetParser.parsePorts(port ?? p ?? "80") {
        case .success(let list): ports = list
        case .failure(let error): throw UsageFailure(error.reason)
        }
        if !batch && ports.count != 1 { throw UsageFailure("one port per single-target trace; use --targets for more") }

        var config = EngineConfiguration()
        guard (1...255).contains(f) else { throw UsageFailure("-f: first TTL must be 1...255") }
        guard (1...255).contains(m) else { throw UsageFailure("-m: max TTL must be 1...255") }
        guard m >= f else { throw UsageFailure("-m \(m) is below -f \(f)") }
        guard (1...ProbeTag.attemptCount).contains(q) else { throw UsageFailure("-q: probes per hop must be 1...8") }
        guard w > 0, w <= 60 else { throw UsageFailure("-w: wait must be more than 0 and at most 60 seconds") }
        guard (0...255).contains(t) else { throw UsageFailure("-t: TOS must be 0...255") }
        guard (40...1500).contains(l) else { throw UsageFailure("-l: packet length must be 40...1500") }
        guard rate >= 1 && rate <= 10_000_000 else { throw UsageFailure("--rate must be 1...10000000 probes/s") }
        guard (1...ProbeTag.slotCount).contains(maxInFlight) else {
            throw UsageFailure("--max-in-flight must be 1...\(ProbeTag.slotCount)")
        }
        if let gap, gap < 0 { throw UsageFailure("--gap must be 0 or more") }
        if let sourcePort, !(1...65535).contains(sourcePort) { throw UsageFailure("--sport must be 1...65535") }
        guard nameTimeout > 0, nameTimeout <= 60 else {
            throw UsageFailure("--name-timeout must be more than 0 and at most 60 seconds")
        }
        guard maxPrefixAddresses >= 1 else { throw UsageFailure("--max-prefix-addresses must be positive") }
        var sourceOverride: IPv4Address?
        if let s {
            guard let address = IPv4Address(s) else { throw UsageFailure("-s: '\(s)' is not an IPv4 address") }
            sourceOverride = address
        }

        // One target is parsed here; a list is read as a stream once the namespace and routes are known.
        var singleTarget: TargetSpec?
        if let host {
            switch TargetParser.parseTarget(Substring(host), maxPrefixAddresses: 1) {
            case .success(let spec): singleTarget = spec
            case .failure(let error): throw UsageFailure(error.reason)
            }
        }

        config.firstTTL = UInt8(f)
        config.maxTTL = UInt8(m)
        config.probesPerHop = q
        guard retries >= 0, q * (1 + retries) <= ProbeTag.attemptCount else {
            throw UsageFailure("--retries: -q × (1 + retries) must be at most \(ProbeTag.attemptCount)")
        }
        config.retries = retries
        if let reasks {
            guard reasks >= 0, q * (1 + retries + reasks) <= ProbeTag.attemptCount else {
                throw UsageFailure("--reasks: -q × (1 + retries + reasks) must be at most \(ProbeTag.attemptCount)")
            }
            config.reasks = reasks
        }
        config.waitNanos = UInt64(w * 1e9)
        config.tos = UInt8(t)
        config.packetLength = l
        config.dontFragment = dontFragment
        config.rate = rate
        config.gapLimit = gap ?? (batch ? 5 : 0)
        config.maxInFlight = maxInFlight
        config.sourcePort = UInt16(sourcePort ?? Int.random(in: 20000...59999))
        if let problem = config.problem { throw UsageFailure(problem) }

        // The AS table, read before anything is set up: a file that cannot be used is bad input.
        let asnTable = asnDB.isEmpty ? nil : try loadASNTable(asnDB)

        // 2. The system: namespace, privileges, routes, sockets.
        if let netns, let problem = enterNamespace(netns) { throw problem }
        if let problem = Privileges.check() { throw UsageFailure(problem) }
        let routes = try RouteTable.load()
        if let sourceOverride, !routes.sourceAddressExists(sourceOverride) {
            throw UsageFailure("-s: \(sourceOverride) is not an address of this host")
        }
        // -i: probes really leave through that interface (the transport binds its raw socket to it), so
        // routes are looked up as the kernel does for a bound socket: only those through it.
        var pathRoutes = routes
        if let i {
            guard let index = routes.interfaceIndex(named: i) else { throw UsageFailure("-i: no interface named '\(i)'") }
            guard routes.firstAddress(ofInterface: i) != nil else {
                throw UsageFailure("-i: interface '\(i)' has no IPv4 address")
            }
            pathRoutes = routes.restricted(toInterface: index)
        }
        // The route each target's probes take; a target whose route cannot use -i or -s is refused
        // (one target: exit 2; a list: skipped with its line), never probed into silence.
        let routeFor: @Sendable (IPv4Address) -> Result<Route, ReasonError> = { [pathRoutes, i, sourceOverride] destination in
            guard let route = pathRoutes.lookup(destination) else {
                if let i, routes.lookup(destination) != nil {
                    return .failure(ReasonError("no route through \(i) (-i \(i))"))
                }
                return .failure(ReasonError("no route to host"))
            }
            if let sourceOverride, let problem = routes.problem(source: sourceOverride, on: route) {
                return .failure(ReasonError("-s \(sourceOverride) cannot be used: \(problem)"))
            }
            return .success(route)
        }
        let sourceFor: TraceRequestIterator.SourceFor = { destination in
            routeFor(destination).map { sourceOverride ?? $0.source }
        }

        // Single-target mode resolves its one target up front: an unresolvable name or a missing route
        // is an error, not a skip, and the header line needs the route.
        var singleRequest: TraceRequest?
        if let singleTarget {
            var one = TraceRequestIterator(targets: [(1, singleTarget)], ports: ports, resolve: resolveHostname,
                sourceFor: sourceFor, onSkip: { _, _, reason in Out.error("fasttrace: \(reason)") })
            guard let request = one.next() else { throw ExitCode(2) }
            singleRequest = request
        }
        // A list: read, parsed and resolved on other threads while the engine runs (TargetStream).
        var stream: TargetStream?
        if let targetsFile {
            do {
                stream = try TargetStream(path: targetsFile, ports: ports, maxPrefixAddresses: maxPrefixAddresses,
                    resolve: { resolveHostname($0) }, sourceFor: { [sourceOverride] destination in
                        routeFor(destination).map { sourceOverride ?? $0.source }
                    })
            } catch {
                throw UsageFailure("cannot read target file '\(targetsFile)': \(String(cString: strerror(error.errno)))")
            }
            stream!.onSkip = { skip in Out.error("fasttrace: \(targetsFile):\(skip.line): \(skip.reason) (skipped)") }
        }

        let transport = try LinuxTransport(configuration: .init(
            sourcePorts: config.sourcePort...config.sourcePort, interfaceName: i))
        let engine = TraceEngine(configuration: config, transport: transport, clock: SystemClock())
        // Hop names are looked up by resolver threads (started at the first lookup, from this thread, so
        // they share its namespace); finished output waits in `stage` until its names are in.
        let resolver = n ? nil : NameResolver(waitNanos: UInt64(nameTimeout * 1e9))
        defer { resolver?.stop() }
        let stage = OutputStage(resolver: resolver, asnTable: asnTable)
        // Polled every scheduler turn: output whose names are in is written, results waiting more than
        // ~100 ms go out, and a failed write of results stops the run like an interrupt (reported and
        // exit 1 after the engine returns).
        engine.shouldCancel = {
            stage.drain()
            Out.flushIfDue()
            return cancelRequested.load(ordering: .relaxed) || Out.writeError != nil
        }

        let text = TextFormatter(showDNAT: dnat)
        var lastProgress = ""
        let progress = batch && isatty(2) == 1

        var singleFinished: (TraceResult) -> Void = { _ in }
        if let request = singleRequest {
            // The device the probes actually leave through (the route sourceFor accepted).
            let device = (try? routeFor(request.destination).get())?.interfaceName ?? i ?? "?"
            let service = serviceName(request.port).map { " (\($0))" } ?? ""
            let target = request.name.map { "\($0) (\(request.destination))" } ?? request.destination.description
            if format == .text {
                Out.line("Selected device \(device), address \(request.source), port \(config.sourcePort) for outgoing packets")
                Out.line("Tracing the path to \(target) on TCP port \(request.port)\(service), \(config.maxTTL) hops max")
                try Out.finish()
                var lastTranslation: IPv4Address?
                var submittedThrough: UInt8 = 0
                // Each hop line is printed once its names are in (at most the name timeout after the hop
                // settled), in TTL order.
                engine.onHop = { _, hop in
                    submittedThrough = hop.ttl
                    stage.submit(addresses: hop.responders) { annotator in
                        for line in text.hopLines(hop, annotator, lastTranslation: &lastTranslation) { Out.line(line) }
                        Out.flush()
                    }
                }
                // Interrupted: the hops not yet settled, with `?` for probes not waited for, and a
                // line saying the trace is incomplete.
                singleFinished = { result in
                    guard result.stopReason == .interrupted else { return }
                    for hop in result.hops where hop.ttl > submittedThrough {
                        stage.submit(addresses: hop.responders) { annotator in
                            for line in text.hopLines(hop, annotator, lastTranslation: &lastTranslation) {
                                Out.line(line)
                            }
                        }
                    }
                    stage.submit(addresses: EmptyCollection()) { _ in
                        Out.line("Interrupted: the trace is incomplete (? = probe not waited for)")
                    }
                }
            }
            var one = IteratorRequestSource(CollectionOfOne(request).makeIterator())
            var reported = false
            let report = singleFinished
            let summaryLine = try runEngine(engine, source: &one, text: text, stage: stage,
                single: { reported = true; report($0) })
            if format == .text && !reported && cancelRequested.load(ordering: .relaxed) {
                // Interrupted before the trace was under way: say so rather than end on the header.
                Out.line("Interrupted before any probe was sent")
                try Out.finish()
            }
            if summary { Out.error(summaryLine) }
        } else if let stream {
            engine.onProgress = { p in
                guard progress else { return }
                // The total is known only once the whole list is read and every name looked up.
                let done = stream.total.map { "\(p.finished)/\($0) traces" } ?? "\(p.finished) traces done"
                let line = "\r[fasttrace] \(done), \(p.inFlight) in flight, \(p.probesSent) probes, \(Int(p.probesPerSecond)) probes/s"
                if line != lastProgress { Out.raw(line, fd: 2); lastProgress = line }
            }
            try stream.start()
            var source = stream
            let summaryLine: String
            do {
                defer { stream.cancel() }
                summaryLine = try runEngine(engine, source: &source, text: text, stage: stage)
            }
            if progress { Out.raw("\r" + String(repeating: " ", count: lastProgress.count) + "\r", fd: 2) }
            let skipped = stream.skipped
            if stream.failure == nil && stream.readError == nil && !cancelRequested.load(ordering: .relaxed)
                && stream.produced == 0 && skipped == 0
            {
                throw UsageFailure("\(stream.sourceName): no targets")
            }
            Out.error(summaryLine + (skipped > 0 ? ", \(skipped) targets skipped" : ""))
            // A bad line or a failed read ends the reading; what was before it has been traced.
            if let readError = stream.readError { throw readError }
            if let failure = stream.failure { throw UsageFailure(failure.description) }
        }
        if cancelRequested.load(ordering: .relaxed) { throw ExitCode(130) }
    }

    private func runEngine<Source: TraceRequestSource>(
        _ engine: TraceEngine, source: inout Source, text: TextFormatter, stage: OutputStage,
        single: @escaping (TraceResult) -> Void = { _ in }
    ) throws -> String {
        let format = self.format
        let batch = targetsFile != nil
        let csv = CSVFormatter(probesPerHop: q, names: !n, asn: stage.showsASN)
        let graph = TraceGraph()
        if format == .csv { Out.append(csv.writeHeader) }
        let result = try engine.run(source: &source) { trace in
            // Written once its hops' names are in (stage); buffered: the buffer goes out when full, every
            // ~100 ms (shouldCancel) and at the end.
            switch format {
            case .json: stage.submit(addresses: trace.responders) { Out.json(trace, $0) }
            case .csv: stage.submit(addresses: trace.responders) { annotator in Out.append { csv.write(trace, annotator, into: &$0) } }
            case .dot: stage.submit(addresses: trace.responders) { graph.add(trace, $0) }
            case .text:
                if batch {
                    stage.submit(addresses: trace.responders) { Out.line(text.block(trace, $0)) }
                } else {
                    single(trace)
                }
            }
        }
        // Traces still waiting for names: each goes out when they are in, at its deadline at the latest,
        // or at once on an interrupt or a failed write.
        stage.finish(cancelled: { cancelRequested.load(ordering: .relaxed) || Out.writeError != nil },
            tick: { Out.flushIfDue() })
        // The graph needs every trace: it is written once the run is over (also after an interruption).
        if format == .dot { Out.append(graph.write) }
        try Out.finish()
        let d = result.dispatch
        let seconds = Double(result.elapsedNanos) / 1e9
        return "fasttrace: \(result.traces) traces, \(result.reached) reached, \(result.probesSent) probes sent, "
            + "\(d.matched) replies matched, \(d.rejected) rejected (malformed \(d.malformed), foreign \(d.foreign), "
            + "forged \(d.forged), stale \(d.stale), premature \(d.premature)), \(d.duplicates) duplicates, "
            + "\(result.rateLimitedHops) rate-limited hops (\(result.reasksSent) re-asks), "
            + "\(result.transport.ringDrops) ring drops, "
            + "\(formatSeconds(seconds)) s, \(Int(result.probesPerSecond)) probes/s"
            + (result.cancelled ? ", interrupted: \(result.interrupted) traces partial" : "")
    }
}

/// A problem with what the user asked for: one line, exit status 2.
struct UsageFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

func formatSeconds(_ s: Double) -> String {
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

func installSignalHandlers() {
    let handler: @convention(c) (Int32) -> Void = { _ in cancelRequested.store(true, ordering: .relaxed) }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
}
