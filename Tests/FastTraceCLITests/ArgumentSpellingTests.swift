// Spellings the command line takes as tcptraceroute and traceroute do (issue 13): values attached to
// short options, help asked for the wrong way; and the table behind them checked against the parser.

import ArgumentParser
import Testing

@testable import fasttrace

@Suite struct ArgumentSpellingTests {
    func split(_ line: String) -> String {
        ArgumentSpelling.splittingAttachedValues(line.split(separator: " ").map(String.init)).joined(separator: " ")
    }

    @Test func attachedValuesAreSplitOffAsGetoptDoes() {
        #expect(split("-q1 -w1 -m8 -n 198.18.0.1 443") == "-q 1 -w 1 -m 8 -n 198.18.0.1 443")
        #expect(split("-p443 --targets -") == "-p 443 --targets -")
        #expect(split("-s198.18.0.2 -ieth0 -f2 -t0x10 -l100 -w0.5") == "-s 198.18.0.2 -i eth0 -f 2 -t 0x10 -l 100 -w 0.5")
        // Flags together, a value after them, in the same argument or the next.
        #expect(split("-nF -nq1 -Nnq 2") == "-n -F -n -q 1 -N -n -q 2")
        // A negative value stays a value, judged by the option's own check.
        #expect(split("-q-1 -q -1 -w -1") == "-q -1 -q -1 -w -1")
    }

    @Test func valuesAndUnknownClustersAreLeftAlone() {
        // The value of an option, whatever it looks like.
        #expect(split("-s -q1 --targets -p443 --netns -nq1 --format=-q1 -q1")
            == "-s -q1 --targets -p443 --netns -nq1 --format=-q1 -q 1")
        // A letter that is no option: the parser names the argument as typed.
        #expect(split("-x1 -1 -nx -help") == "-x1 -1 -nx -help")
        // After --, nothing is an option.
        #expect(split("-q1 -- -q1") == "-q 1 -- -q1")
        // `--option=` is an empty value, never the next argument (a trial's `--payload-hex= aabb` sent aabb).
        #expect(ArgumentSpelling.splittingAttachedValues(["--payload-hex=", "aabb", "--rate=", "-q1"])
            == ["--payload-hex", "", "aabb", "--rate", "", "-q", "1"])
    }

    @Test func optionsMeantAsBothAreRefusedGivenTwice() {
        func twice(_ line: String) -> String? {
            ArgumentSpelling.givenTwice(in: ArgumentSpelling.splittingAttachedValues(line.split(separator: " ").map(String.init)))
        }
        #expect(twice("-p 443 -p 80 198.51.100.1") == "-p given twice ('443', then '80'): list the ports in one: -p 443,80")
        #expect(twice("-p443 -np80 x")?.hasPrefix("-p given twice ('443', then '80')") == true)
        #expect(twice("--targets a --targets=b")?.hasPrefix("--targets given twice ('a', then 'b')") == true)
        #expect(twice("--metrics-listen :1 --metrics-listen :2")?.hasPrefix("--metrics-listen given twice") == true)
        // The same value again, options whose last copy wins by custom, values of other options, after --.
        for fine in ["-p 443 -p 443 x", "-q 1 -q 3 x", "--netns -p -p 80 x", "-p 443 -- -p 80", "--format json --format text"] {
            #expect(twice(fine) == nil, "\(fine)")
        }
    }

    @Test func helpAskedForTheWrongWayIsFound() {
        for wrong in ["-help", "-HELP", "--h", "-he", "-hel", "--hlep", "-hlep", "-?", "--Help", "-usage"] {
            #expect(ArgumentSpelling.misspelledHelp(in: ["198.18.0.1", wrong]) == wrong, "\(wrong)")
        }
        for fine in [["-h"], ["--help"], ["-nh"], ["--netns", "-help"], ["--", "-help"], ["-s", "-help"], ["help"]] {
            #expect(ArgumentSpelling.misspelledHelp(in: fine) == nil, "\(fine)")
        }
    }

    /// The table is the parser's: every short letter takes a value exactly when the parser asks for one,
    /// and every long option that takes a value is listed.
    @Test func theTableMatchesTheArgumentDefinitions() {
        let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        for letter in letters where letter != "h" {
            let message: String
            do {
                _ = try FastTrace.parseAsRoot(["-\(letter)"])
                message = "parsed"
            } catch {
                message = FastTrace.message(for: error)
            }
            let takesValue = message.hasPrefix("Missing value for '-\(letter) ")
            let unknown = message.hasPrefix("Unknown option")
            #expect(takesValue == ArgumentSpelling.valuedShort.contains(letter), "-\(letter): \(message)")
            #expect(!unknown == (ArgumentSpelling.valuedShort.contains(letter)
                || ArgumentSpelling.flagShort.contains(letter)), "-\(letter): \(message)")
        }
        // Long options with a value, as --help shows them (`--rate <probes/s>`).
        let help = FastTrace.helpMessage(columns: 200)
        let valued = Set(help.split(separator: "\n").compactMap { line -> String? in
            let words = line.split(separator: " ")
            guard let first = words.first, first.hasPrefix("--"), words.count > 1, words[1].hasPrefix("<") else { return nil }
            return String(first.dropFirst(2))
        })
        #expect(valued.isSubset(of: ArgumentSpelling.valuedLong), "\(valued.subtracting(ArgumentSpelling.valuedLong))")
        #expect(valued.count >= 11, "\(valued)")
    }
}

/// What the help says of speed and of the gap (issue 13 items 5 and 14: a new user's 20,000 targets took
/// 4 minutes at the default rate and nothing said how to go faster; `--gap` did not say what counts).
@Suite struct HelpTextTests {
    @Test func theHelpSaysWhatTheRateIsForAndHowToGoFaster() {
        let help = FastTrace.helpMessage(columns: 400)
        let rate = help.split(separator: "\n").first { $0.contains("--rate <probes/s>") } ?? ""
        #expect(rate.contains("(default: 2000)") && rate.contains("busy production hosts") && rate.contains("--rate 20000"),
            "\(rate)")
        #expect(help.contains("--rate 20000 is ten times faster"), "the overview names the way to go faster")
        let gap = help.split(separator: "\n").first { $0.contains("--gap <hops>") } ?? ""
        #expect(gap.contains("past its last answer") && gap.contains("rate limiting"), "\(gap)")
    }
}

@Suite struct ListNoticeTests {
    @Test func theFirstTenAreShownAndTheRestCounted() {
        let limit = NoticeLimit(limit: 10)
        let shown = (0..<25).filter { _ in limit.admit() }.count
        #expect(shown == 10 && limit.held == 15)
    }

    @Test func everyExitStatusHasAMeaningForTheManPage() {
        let lines = ExitStatus.table.split(separator: "\n")
        #expect(lines.map { $0.prefix { $0 != "\t" } } == ["0", "1", "2", "3", "130"])
        #expect(lines.allSatisfy { $0.split(separator: "\t").count == 2 && !$0.hasSuffix("\t") })
        // --help's short form names each one.
        for status in ExitStatus.allCases { #expect(ExitStatus.summary.contains("\(status.rawValue) ")) }
    }

    @Test func invisibleCharactersInEchoedInputAreWrittenOut() {
        // Zero-width space, right-to-left override, no-break space, BOM, line separator, soft hyphen.
        #expect(escapingControlCharacters("198.18.0.1\u{200B}") == "198.18.0.1\\u{200b}")
        #expect(escapingControlCharacters("a\u{202E}b\u{00A0}c\u{FEFF}d\u{2028}e\u{00AD}f")
            == "a\\u{202e}b\\u{a0}c\\u{feff}d\\u{2028}e\\u{ad}f")
        // Visible text stays: letters of any script, a plain space, a tab.
        #expect(escapingControlCharacters("é ü 名前\tx") == "é ü 名前\tx")
    }
}
