// A cap on the notices a target list can print: the first few skipped lines, skipped targets and
// duplicates are named one line each, the rest only counted, so a garbage file of a million lines
// gives ten lines and a count rather than a million lines on stderr.

/// Admits the first `limit` notices; counts the ones held back. Used on one thread (the scheduler's).
final class NoticeLimit {
    /// Notices printed at most.
    let limit: Int
    /// Notices admitted so far.
    private(set) var shown = 0
    /// Notices held back.
    private(set) var held = 0

    init(limit: Int) { self.limit = limit }

    /// True if this notice may be printed; false (and counted) once `limit` were.
    func admit() -> Bool {
        if shown < limit {
            shown += 1
            return true
        }
        held += 1
        return false
    }
}
