// Continuous mode (`--interval`): the list traced on a schedule (FastTraceCore's ScheduleSource) until
// SIGINT/SIGTERM, `--count` rounds or `--duration`; each round written in the run's format, or with
// `--changes` only the change events. SIGHUP re-reads `--targets`. And the option checks of continuous mode
// and `--metrics-listen`, which belong to no other mode.

import ArgumentParser
import FastTraceCore
import FastTraceLinux
import FastTraceMetricsServer
import FastTraceStats
import FastTraceWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Set by SIGHUP: re-read the target list at the next scheduler turn.
let reloadRequested = Atomic<Bool>(false)

/// Continuous mode's settings, checked.
struct ContinuousOptions {
    var interval: Double
    var maxRounds: Int?
    var duration: Double?
}

extension FastTrace {
    /// The continuous-mode options, checked; nil without `--interval`. Options of continuous mode without
    /// it, or with `-c`/`--report`, are usage errors.
    func continuousOptions() throws -> ContinuousOptions? {
        if let vantageOption {
            guard !vantageOption.isEmpty, vantageOption.count <= 128,
                !vantageOption.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
            else { throw UsageFailure("--vantage: a name of 1 to 128 printable characters") }
        }
        guard let interval = intervalOption else {
            for (given, name) in [(countOption != nil, "--count"), (durationOption != nil, "--duration"),
                (changes, "--changes")] where given
            {
                throw UsageFailure("\(name) is for continuous mode: give --interval SECONDS too")
            }
            if changeWindowOption != nil && metricsListen == nil {
                throw UsageFailure("--change-window is for --interval or --metrics-listen")
            }
            return nil
        }
        guard interval >= 0.1, interval <= 86_400 else {
            throw UsageFailure("--interval: must be 0.1...86400 seconds (got \(formatNumber(interval)))")
        }
        if roundsOption != nil || report {
            throw UsageFailure("\(roundsOption != nil ? "-c" : "--report") and --interval: continuous mode counts its "
                + "rounds with --count")
        }
        if let countOption, !(1...1_000_000).contains(countOption) {
            throw UsageFailure("--count: rounds must be 1...1000000 (got \(countOption))")
        }
        if let durationOption, !(durationOption > 0 && durationOption <= 31_536_000) {
            throw UsageFailure("--duration: must be more than 0 and at most 31536000 seconds (got "
                + "\(formatNumber(durationOption)))")
        }
        if let durationOption, targetsFile != nil, durationOption < interval {
            throw UsageFailure("--duration \(formatNumber(durationOption)) is shorter than --interval "
                + "\(formatNumber(interval)): a list's rounds are spread over the interval, so the targets whose turn "
                + "comes later would never be traced; give a --duration of at least the interval, or --count")
        }
        if let changeWindowOption, !(1...10_000).contains(changeWindowOption) {
            throw UsageFailure("--change-window: must be 1...10000 rounds (got \(changeWindowOption))")
        }
        if format == .dot { throw UsageFailure("--interval: the dot graph is written at the end of a run; use text, json or csv") }
        if changes && format == .csv {
            throw UsageFailure("--changes writes JSON lines; --format csv does not apply")
        }
        return ContinuousOptions(interval: interval, maxRounds: countOption, duration: durationOption)
    }

    /// The vantage point's name: `--vantage`, or the host name.
    var vantage: String {
        if let vantageOption { return vantageOption }
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "unknown" }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }


    /// Runs continuous mode to its end; throws the exit status.
    func runContinuous(
        _ options: ContinuousOptions, engine: TraceEngine, clock: SystemClock, stream: TargetStream?,
        single: TraceRequest?, text: TextFormatter, stage: OutputStage, tracker: ChangeTracker,
        metrics: RunMetrics?, listNotices: NoticeLimit, makeStream: @escaping () throws -> TargetStream
    ) throws {
        let intervalNanos = UInt64(options.interval * 1e9)
        let endNanos = options.duration.map { clock.now() + UInt64($0 * 1e9) }
        let vantage = self.vantage
        let changes = self.changes
        installReloadHandler()
        if let stream {
            try stream.start()
            let removedTargets = RemovedTargets()
            let schedule = ScheduleSource(stream, intervalNanos: intervalNanos, maxRounds: options.maxRounds,
                endNanos: endNanos, clock: clock)
            let path = targetsFile ?? "-"
            schedule.onRemoved = { index in
                removedTargets.indices.insert(index)
                tracker.remove(index)
                metrics?.remove(index)
            }
            var reloadStream: TargetStream?
            // Lines and targets the re-reads skipped: in the summary and the exit status at the end, as the
            // first read's are (each was named when it was read).
            let reloadSkips = ReloadSkips()
            // A SIGHUP while a re-read is under way (a list written, then written again, each followed by
            // a HUP) is not dropped: the list is read once more when the one under way is done.
            var reloadAgain = false
            let reloadDone = {
                if reloadAgain {
                    reloadAgain = false
                    reloadRequested.store(true, ordering: .relaxed)
                }
            }
            let reloadFailed: (String) -> Void = { reason in
                Out.error("fasttrace: SIGHUP: \(reason); the list stays as it was (\(counted(schedule.count, "target x port", "target x ports")))")
                metrics?.count(.reloadFailed)
                reloadDone()
            }
            schedule.onReloaded = { kept, added, removed in
                var line = "fasttrace: SIGHUP: \(path) re-read: \(counted(kept + added, "target x port", "target x ports"))"
                    + " (\(kept) kept, \(added) added, \(removed) removed)"
                if let s = reloadStream {
                    reloadSkips.add(s)
                    if s.linesSkipped > 0 { line += ", \(counted(s.linesSkipped, "line")) skipped" }
                    if s.skipped > 0 { line += ", \(counted(s.skipped, "target")) skipped" }
                    if s.duplicates > 0 { line += ", \(counted(s.duplicates, "duplicate target")) dropped" }
                }
                Out.error(line)
                metrics?.setTargets(schedule.count)
                reloadStream = nil
                reloadDone()
            }
            schedule.acceptReload = { candidate in
                if let error = candidate.readError {
                    reloadFailed("cannot read target file '\(path)': \(String(cString: strerror(error.errno)))")
                    return false
                }
                if candidate.produced == 0 {
                    reloadSkips.add(candidate)
                    reloadFailed("\(path) now holds no target that can be traced")
                    return false
                }
                return true
            }
            let cancel = engine.shouldCancel
            engine.shouldCancel = {
                if reloadRequested.exchange(false, ordering: .relaxed) {
                    if path == "-" {
                        reloadFailed("the list came from standard input, which cannot be read again")
                    } else if schedule.reloading {
                        if !reloadAgain {
                            Out.error("fasttrace: SIGHUP: \(path) is being re-read already; it is read again once that is done")
                        }
                        reloadAgain = true
                    } else {
                        do {
                            let fresh = try makeStream()
                            let notices = NoticeLimit(limit: 10)
                            fresh.onSkip = { skip in
                                if skip.kind != .duplicates { metrics?.count(skip.kind == .line ? .skippedLine : .skippedTarget) }
                                guard notices.admit() else { return }
                                let what = switch skip.kind {
                                case .line: "line skipped"
                                case .targets: "skipped"
                                case .duplicates: "duplicate dropped"
                                }
                                Out.error("fasttrace: \(path):\(skip.line): \(skip.reason) (\(what))")
                            }
                            try fresh.start()
                            reloadStream = fresh
                            schedule.replace(with: fresh)
                        } catch let error as SystemError {
                            reloadFailed("cannot read target file '\(path)': \(String(cString: strerror(error.errno)))")
                        } catch {
                            reloadFailed("cannot read target file '\(path)': \(error)")
                        }
                    }
                }
                return cancel()
            }
            var source = schedule
            let summaryLine: String
            do {
                defer { stream.cancel(); reloadStream?.cancel() }
                summaryLine = try runEngine(engine, source: &source, text: text, stage: stage,
                    observe: observer(schedule.finished, tracker: tracker, metrics: metrics, changes: changes,
                        vantage: vantage, stage: stage, count: { schedule.count }, removed: removedTargets)).line
            }
            let linesSkipped = stream.linesSkipped, skipped = stream.skipped, duplicates = stream.duplicates
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
            if reloadSkips.lines > 0 { tail += ", \(counted(reloadSkips.lines, "line")) skipped in re-reads" }
            if reloadSkips.targets > 0 { tail += ", \(counted(reloadSkips.targets, "target")) skipped in re-reads" }
            let nothing = !interrupted && stream.produced == 0
            if !nothing { Out.error(summaryLine + tail) }
            if let readError = stream.readError { throw readError }
            if nothing { throw UsageFailure("\(stream.sourceName): no target could be traced") }
            if interrupted { throw ExitCode(ExitStatus.interrupted.rawValue) }
            if skipped + linesSkipped + reloadSkips.lines + reloadSkips.targets > 0 {
                throw ExitCode(ExitStatus.partlySkipped.rawValue)
            }
        } else if let single {
            let schedule = ScheduleSource(IteratorRequestSource(CollectionOfOne(single).makeIterator()),
                intervalNanos: intervalNanos, maxRounds: options.maxRounds, endNanos: endNanos, clock: clock)
            let cancel = engine.shouldCancel
            engine.shouldCancel = {
                if reloadRequested.exchange(false, ordering: .relaxed) {
                    Out.error("fasttrace: SIGHUP: no --targets file to re-read; still tracing \(single.destination)")
                }
                return cancel()
            }
            var source = schedule
            let summaryLine = try runEngine(engine, source: &source, text: text, stage: stage,
                observe: observer(schedule.finished, tracker: tracker, metrics: metrics, changes: changes,
                    vantage: vantage, stage: stage, count: { schedule.count })).line
            if summary { Out.error(summaryLine) }
            if cancelRequested.load(ordering: .relaxed) { throw ExitCode(ExitStatus.interrupted.rawValue) }
        }
    }

    /// What continuous mode does with each finished round before (or instead of) writing it.
    private func observer(
        _ finished: @escaping (TraceResult) -> (round: Int, last: Bool), tracker: ChangeTracker, metrics: RunMetrics?,
        changes: Bool, vantage: String, stage: OutputStage, count: @escaping () -> Int,
        removed: RemovedTargets = RemovedTargets()
    ) -> (TraceResult) -> Bool {
        { trace in
            _ = finished(trace)
            // The round of a target a SIGHUP removed while it ran: written, but its statistics and series
            // went with it and are not made again.
            if removed.indices.contains(trace.request.index) { return changes }
            // The tracker (a window of per-hop statistics per target × port) runs only when its output is
            // wanted.
            let events = changes || metrics != nil ? tracker.add(trace) : []
            if let metrics {
                metrics.record(trace, tracker: tracker)
                metrics.setTargets(count())
            }
            guard changes else { return false }
            if !events.isEmpty {
                let time = Out.wallNanos(monotonic: Out.monotonicNanos())
                stage.submit(addresses: EmptyCollection()) { _ in
                    for event in events {
                        Out.append { EventJSON.write(event, vantage: vantage, time: time, into: &$0); $0.append(0x0A) }
                    }
                }
            }
            return true
        }
    }
}

/// Target × ports a SIGHUP re-read removed (engine thread only).
final class RemovedTargets {
    var indices: Set<Int> = []
}

/// What SIGHUP re-reads of the list skipped, summed over the run (the engine's thread only).
final class ReloadSkips {
    private(set) var lines = 0
    private(set) var targets = 0

    /// Adds a re-read's counts, once it is done.
    func add(_ stream: TargetStream) {
        lines += stream.linesSkipped
        targets += stream.skipped
    }
}

/// SIGHUP asks for the list to be re-read (continuous mode only; elsewhere it ends the process, as by
/// default).
func installReloadHandler() {
    let handler: @convention(c) (Int32) -> Void = { _ in reloadRequested.store(true, ordering: .relaxed) }
    signal(SIGHUP, handler)
}
