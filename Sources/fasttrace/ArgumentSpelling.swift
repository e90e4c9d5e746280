// Spellings of the command line that swift-argument-parser does not take but tcptraceroute and
// traceroute users type: values attached to short options (`-q1`, `-m8`, `-p443`, `-s198.18.0.2`,
// `-nq1`, as getopt reads them), and help asked for the wrong way (`-help`, `--h`, `help`). A pre-pass
// over argv rewrites the first into the parser's spelling and answers the second; which short options
// take a value comes from one table (`ArgumentSpelling`), which a unit test checks against the
// parser's own definitions.

/// How fasttrace's options are spelled, as far as the pre-pass needs to know.
enum ArgumentSpelling {
    /// Short options that take a value.
    static let valuedShort: Set<Character> = ["p", "i", "f", "m", "q", "w", "t", "l", "s", "c"]
    /// Short options that take none (`-h` is the parser's help).
    static let flagShort: Set<Character> = ["n", "N", "F", "T", "U", "I", "S", "A", "E", "h"]
    /// Long options that take a value (the next argument is that value, whatever it looks like).
    static let valuedLong: Set<String> = [
        "targets", "retries", "reasks", "name-timeout", "asn-db", "sport", "rate", "gap", "format",
        "max-in-flight", "max-prefix-addresses", "netns", "generate-completion-script", "protocol", "payload-hex",
        "send-path", "rounds", "shard", "shard-seed", "plot", "interval", "count", "duration", "change-window",
        "metrics-listen", "vantage",
    ]

    /// `arguments` with every value attached to a short option split off as getopt does: `-q1` is `-q 1`,
    /// `-nq1` is `-n -q 1`, `-nF` is `-n -F`, `-q-1` is `-q -1` (and judged as -1). An argument that is
    /// the value of the option before it (`-s -x`, `--targets -q1`) is left as it is, and so is
    /// everything after `--` and any cluster with a letter that is no option (`-x1`, `-1`, `-help`), for
    /// the parser to refuse by its own name.
    static func splittingAttachedValues(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var valueNext = false
        for (index, argument) in arguments.enumerated() {
            if valueNext {
                out.append(argument)
                valueNext = false
                continue
            }
            if argument == "--" {
                out += arguments[index...]
                break
            }
            if argument.hasPrefix("--") {
                // `--rate=` is an empty value, not "take the next argument" (which the parser would do):
                // handed on as `--rate ""`, for the option to refuse by its own rule.
                if argument.hasSuffix("="), valuedLong.contains(String(argument.dropFirst(2).dropLast())) {
                    out += [String(argument.dropLast()), ""]
                    continue
                }
                out.append(argument)
                valueNext = !argument.contains("=") && valuedLong.contains(String(argument.dropFirst(2)))
                continue
            }
            guard argument.hasPrefix("-"), argument.count > 1 else {
                out.append(argument)
                continue
            }
            if let pieces = splitCluster(argument.dropFirst()) {
                out += pieces.arguments
                valueNext = pieces.valueNext
            } else {
                out.append(argument)
            }
        }
        return out
    }

    /// `nq1` → `-n -q 1`; nil when a letter is no short option.
    private static func splitCluster(_ body: Substring) -> (arguments: [String], valueNext: Bool)? {
        var pieces: [String] = []
        var index = body.startIndex
        while index < body.endIndex {
            let letter = body[index]
            index = body.index(after: index)
            if flagShort.contains(letter) {
                pieces.append("-\(letter)")
            } else if valuedShort.contains(letter) {
                pieces.append("-\(letter)")
                guard index < body.endIndex else { return (pieces, true) }
                pieces.append(String(body[index...]))
                return (pieces, false)
            } else {
                return nil
            }
        }
        return (pieces, false)
    }

    /// The first argument that asks for help the wrong way (`-help`, `-HELP`, `--h`, `-he`, `--hlep`,
    /// `-?`), or nil. Values of options are not looked at (`--netns -help` names a namespace).
    static func misspelledHelp(in arguments: [String]) -> String? {
        var valueNext = false
        for argument in arguments {
            if valueNext {
                valueNext = false
                continue
            }
            if argument == "--" { return nil }
            let body = argument.drop { $0 == "-" }.lowercased()
            if argument.hasPrefix("-"), argument != "-h", argument != "--help",
                ["h", "he", "hel", "help", "hlep", "hepl", "halp", "?", "usage"].contains(body)
            {
                return argument  // before splitting: `-hlep` would be `-h -l ep`
            }
            if argument.hasPrefix("--") {
                valueNext = !argument.contains("=") && valuedLong.contains(String(argument.dropFirst(2)))
            } else if argument.hasPrefix("-"), let last = splitCluster(argument.dropFirst()) {
                valueNext = last.valueNext
                continue
            }
        }
        return nil
    }

    /// Options a second copy of which would be taken for "both" but the parser keeps only the last of:
    /// two ports, two lists, two listen addresses. Given twice with different values they are refused.
    static let once: [String: String] = [
        "-p": "list the ports in one: -p 443,80", "--targets": "one list per run (cat them into one)",
        "--metrics-listen": "one address per run (:PORT listens on every address of both families)",
        "--plot": "one picture per run", "-s": "one source address per run", "-i": "one interface per run",
        "--netns": "one namespace per run",
    ]

    /// The first option of `once` given twice with different values, as one line, or nil. `arguments` are
    /// as `splittingAttachedValues` leaves them; values of other options are not looked at.
    static func givenTwice(in arguments: [String]) -> String? {
        var seen: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" { return nil }
            var name = argument, value: String?
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                value = String(argument[argument.index(after: equals)...])
            } else if index + 1 < arguments.count,
                (argument.hasPrefix("--") && valuedLong.contains(String(argument.dropFirst(2))))
                    || (argument.count == 2 && argument.hasPrefix("-") && valuedShort.contains(argument.last!))
            {
                value = arguments[index + 1]
                index += 1
            }
            index += 1
            guard let value, let hint = once[name] else { continue }
            if let first = seen[name], first != value {
                return "\(name) given twice ('\(first)', then '\(value)'): \(hint)"
            }
            seen[name] = value
        }
        return nil
    }
}
