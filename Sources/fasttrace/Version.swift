// The version, in one place: `fasttrace --version` prints `versionLine`, and the man page and
// completions generated from the argument definitions carry it too.

enum FastTraceVersion {
    /// The release number (semantic versioning).
    static let number = "0.5.0"
    /// What `--version` prints.
    static let versionLine = "fasttrace \(number)"
}
