// Entry point: swift-argument-parser parses the arguments, but its errors are reported the way every
// other input error of fasttrace is: one line on stderr, `fasttrace: …` naming the option and the bad
// value, exit status 2. Help, version and completion-script requests print in full on stdout and exit 0.

import ArgumentParser
import FastTraceCore

#if canImport(Glibc)
import Glibc
#endif

extension FastTrace {
    static func main() {
        // Not necessarily a FastTrace: `--help` parses as the parser's own help command, whose run()
        // prints the help.
        let given = Array(CommandLine.arguments.dropFirst())
        if let argument = invalidUTF8Argument() {
            Out.error("fasttrace: argument '\(argument)' is not valid UTF-8 (invalid bytes shown as \\xNN)")
            Glibc.exit(ExitStatus.badInput.rawValue)
        }
        // `-help` and its kin: the parser would suggest some other option or miss a value for `-l`.
        if let wrong = ArgumentSpelling.misspelledHelp(in: given) {
            Out.error("fasttrace: unknown option '\(wrong)': for the help, use --help (or -h)")
            Glibc.exit(ExitStatus.badInput.rawValue)
        }
        // `fasttrace help`, as the man page lists it: the help, not a trace to a host named help.
        if given.count == 1 && given[0].lowercased() == "help" {
            Out.raw(helpMessage() + "\n", fd: 1)
            Glibc.exit(ExitStatus.done.rawValue)
        }
        let arguments = ArgumentSpelling.splittingAttachedValues(given)
        // `-p 443 -p 80`: the parser would keep 80 alone, silently.
        if let twice = ArgumentSpelling.givenTwice(in: arguments) {
            Out.error("fasttrace: " + twice)
            Glibc.exit(ExitStatus.badInput.rawValue)
        }
        let command: ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            // --help, --version, --generate-completion-script…: the parser's own full text, exit 0.
            if exitCode(for: error) == .success { exit(withError: error) }
            Out.error("fasttrace: " + usageErrorLine(message(for: error)))
            Glibc.exit(ExitStatus.badInput.rawValue)
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

/// The first argument that is not valid UTF-8, its invalid bytes written out as `\xNN`, or nil. (Swift's
/// `CommandLine.arguments` would have replaced them with U+FFFD: a file name with a Latin-1 byte would
/// then not be found, and a message would not show what was typed.)
func invalidUTF8Argument() -> String? {
    for index in 1..<Int(CommandLine.argc) {
        guard let pointer = CommandLine.unsafeArgv[index] else { continue }
        // SAFETY: argv strings are NUL-terminated and live for the whole process.
        let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self),
            count: strlen(pointer))
        let decoded = decodingUTF8EscapingInvalid(bytes)
        if decoded.invalid { return decoded.text }
    }
    return nil
}
