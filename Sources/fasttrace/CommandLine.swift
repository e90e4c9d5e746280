// Entry point: swift-argument-parser parses the arguments, but its errors are reported the way every
// other input error of fasttrace is: one line on stderr, `fasttrace: …` naming the option and the bad
// value, exit status 2. Help, version and completion-script requests print in full on stdout and exit 0.

import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

extension FastTrace {
    static func main() {
        // Not necessarily a FastTrace: `--help` parses as the parser's own help command, whose run()
        // prints the help.
        let command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            // --help, --version, --generate-completion-script…: the parser's own full text, exit 0.
            if exitCode(for: error) == .success { exit(withError: error) }
            Out.error("fasttrace: " + usageErrorLine(message(for: error)))
            Glibc.exit(2)
        }
        do {
            var command = command
            try command.run()
        } catch {
            exit(withError: error)
        }
        Glibc.exit(0)
    }
}

/// One line from the parser's message for a bad argument: its wording with the first letter lowered
/// (it follows `fasttrace: `), the value names as they appear in `--help`, any further lines joined.
func usageErrorLine(_ message: String) -> String {
    let lines = message.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: " ") }
        .filter { !$0.isEmpty }
    var line = lines.joined(separator: "; ")
    if let first = line.first, first.isUppercase, line.dropFirst().first?.isLowercase == true {
        line = first.lowercased() + line.dropFirst()
    }
    return line.isEmpty ? "bad arguments (see --help)" : line
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return s
    }
}
