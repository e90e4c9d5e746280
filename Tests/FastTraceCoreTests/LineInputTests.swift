// The pure parts of streaming a target list: lines cut from chunks that split them anywhere, long
// lines, the per-line parser, and the bounded queue between the reader and the engine.

import FastTraceTestSupport
import FastTraceWire
import Testing

@testable import FastTraceCore

/// Feeds `bytes` to a `LineSplitter` in chunks of `size` bytes and returns every line (with `finish`).
func chunkedLines(_ bytes: [UInt8], chunk size: Int) -> [InputLine] {
    var splitter = LineSplitter()
    var out: [InputLine] = []
    var start = 0
    while start < bytes.count {
        let end = min(bytes.count, start + size)
        out += bytes[start..<end].withUnsafeBytes { splitter.lines(in: $0) }
        start = end
    }
    if let last = splitter.finish() { out.append(last) }
    return out
}

@Suite struct LineInputTests {
    /// Feeds `text` in chunks of `size` bytes and returns every line (with `finish`).
    func split(_ text: String, chunk size: Int) -> [InputLine] { chunkedLines(Array(text.utf8), chunk: size) }

    @Test(arguments: [1, 2, 3, 7, 64, 4096])
    func linesAreTheSameHoweverTheInputIsChunked(size: Int) {
        let text = "198.51.100.7\r\n\n# comment\n203.0.113.0/30\nexample.net"
        #expect(split(text, chunk: size) == [
            InputLine(number: 1, text: "198.51.100.7\r"), InputLine(number: 2, text: ""),
            InputLine(number: 3, text: "# comment"), InputLine(number: 4, text: "203.0.113.0/30"),
            InputLine(number: 5, text: "example.net"),
        ])
    }

    @Test func aFinalNewlineMakesNoExtraLine() {
        #expect(split("192.0.2.1\n", chunk: 5).map(\.number) == [1])
        #expect(split("", chunk: 5).isEmpty)
    }

    @Test func aHugeLineIsCutAndRefusedUnlessItIsAComment() throws {
        let long = String(repeating: "a", count: 10_000)
        let lines = split("\(long)\n# \(long)\n192.0.2.1\n", chunk: 1000)
        #expect(lines.map(\.number) == [1, 2, 3])
        #expect(lines[0].truncated && lines[0].text.utf8.count == LineSplitter.maxLineBytes)
        #expect(TargetParser.parseLine(lines[0]) == .failure(ReasonError("line is longer than 4096 bytes")))
        #expect(try TargetParser.parseLine(lines[1]).get() == nil)
        #expect(try TargetParser.parseLine(lines[2]).get() == .address(IPv4Address(192, 0, 2, 1)))
    }

    @Test func parseLineMatchesTheListRules() throws {
        #expect(try TargetParser.parseLine("  198.51.100.7  # x\r").get() == .address(IPv4Address(198, 51, 100, 7)))
        #expect(try TargetParser.parseLine(" \t# only a comment").get() == nil)
        #expect(TargetParser.parseLine("a b") == .failure(ReasonError("'a b': one target per line")))
        #expect(TargetParser.parseLine("10.0.0.0/8") == .failure(ReasonError(
            "'10.0.0.0/8' expands to 16777216 addresses; the cap is 65536 (--max-prefix-addresses)")))
    }

    @Test func boundedQueueRefusesWhenFullAndKeepsOrderAcrossWrapAround() {
        var queue = BoundedQueue<Int>(capacity: 3)
        for x in 1...3 {
            let ok = queue.push(x)
            #expect(ok)
        }
        let refused = queue.push(4)
        #expect(queue.isFull && !refused && queue.count == 3)
        let first = queue.pop()
        #expect(first == 1)
        let pushed = queue.push(5)
        #expect(pushed)
        var out: [Int] = []
        while let x = queue.pop() { out.append(x) }
        #expect(out == [2, 3, 5] && queue.isEmpty)
        for round in 0..<10 {
            let ok = queue.push(round)
            let back = queue.pop()
            #expect(ok && back == round)
        }
    }
}

@Suite struct TargetLineFastPathTests {
    /// A result as text, for comparing two of them (the error's reason, or the target).
    private func describe(_ result: Result<TargetSpec?, ReasonError>) -> String {
        switch result {
        case .success(let spec?): "target \(spec)"
        case .success(nil): "nothing"
        case .failure(let error): "error \(error.reason)"
        }
    }

    @Test("A line of digits and dots (read without the comment and blank scans) reads as it does with a comment after it")
    func digitsAndDotsAsTheGeneralPath() {
        let pieces = ["0", "1", "7", "10", "127", "192", "198", "203", "224", "255", "256", "01", "00"]
        var random = SeededRandom(seed: 0x5EED_1234)  // a failure repeats
        func next() -> UInt64 { random.next() }
        var addresses = 0, refused = 0
        for _ in 0..<20_000 {
            // Usually four numbers joined by dots; sometimes three or five, sometimes a dot too many.
            let count = next() % 4 == 0 ? Int(3 + next() % 3) : 4
            var text = (0..<count).map { _ in pieces[Int(next() % 13)] }.joined(separator: ".")
            if next() % 3 == 0 {
                text.insert(".", at: text.index(text.startIndex, offsetBy: Int(next() % UInt64(text.count + 1))))
            }
            let fast = describe(TargetParser.parseLine(Substring(text)))
            // The comment sends the line through the general path (strip the comment, trim, check for
            // blanks), which reads the same target.
            let general = describe(TargetParser.parseLine(Substring(text + "  # a comment")))
            #expect(fast == general, "\(text)")
            if fast.hasPrefix("target") { addresses += 1 } else { refused += 1 }
            if fast != general { break }
        }
        #expect(addresses > 500 && refused > 500, "both kinds of line: \(addresses) read, \(refused) refused")
    }
}
