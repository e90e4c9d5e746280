// fasttrace's exit statuses, in one place: the code exits with these, --help lists them, and the man
// page's EXIT STATUS section is made from `--exit-statuses` (scripts/man-page.sh).

/// What the exit status of a run says.
enum ExitStatus: Int32, CaseIterable {
    case done = 0
    case notReachedOrFailed = 1
    case badInput = 2
    case partlySkipped = 3
    case interrupted = 130

    /// One sentence for the man page.
    var meaning: String {
        switch self {
        case .done:
            "The run completed; for a single target, the destination answered (open, closed, or unfiltered with -A)."
        case .notReachedOrFailed:
            "A single target was not reached (Destination not reached), or a system call or a write of the "
                + "results failed (one line names it)."
        case .badInput:
            "Bad input or missing privileges, said in one line: a bad argument or target, a list that cannot "
                + "be read, or a list of which nothing could be traced (every line skipped). Nothing was "
                + "traced, or for a list nothing could be."
        case .partlySkipped:
            "A list was traced, but part of it was skipped: lines that are not targets (malformed, IPv6, an "
                + "address no host has), names that do not resolve or targets with no usable route; each "
                + "is named on stderr with its line and counted in the summary."
        case .interrupted:
            "Interrupted (SIGINT or SIGTERM): what was traced is reported, cut-short traces marked interrupted."
        }
    }

    /// The short form for --help: `0 done (…), 1 …`.
    static var summary: String {
        "0 done (and a single target reached), 1 a single target not reached or a system failure, 2 bad "
            + "input (nothing traced), 3 a list traced with some lines or targets skipped, 130 interrupted"
    }

    /// `STATUS<TAB>MEANING` lines, for the man page.
    static var table: String {
        allCases.map { "\($0.rawValue)\t\($0.meaning)\n" }.joined()
    }
}
