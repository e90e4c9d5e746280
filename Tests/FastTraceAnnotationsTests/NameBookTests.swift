// The bookkeeping of hop-name lookups: one lookup per address however many ask, answers (and the
// absence of a name) cached in a bounded LRU, a bounded queue, and queued lookups nobody waits for any
// more dropped before they tie up a resolver.

import FastTraceWire
import Testing
import FastTraceTestSupport

@testable import FastTraceAnnotations
import FastTraceCore

@Suite struct NameBookTests {
    let a = IPAddress(IPv4Address(198, 51, 100, 1)), b = IPAddress(IPv4Address(198, 51, 100, 2)), c = IPAddress(IPv4Address(198, 51, 100, 3))

    @Test func oneLookupPerAddressAndAnswersAreCached() {
        var book = NameBook(cacheCapacity: 8, queueCapacity: 8, waitNanos: 1_000)
        #expect(book.ask(a, now: 0) == (.pending, true))
        #expect(book.ask(a, now: 10) == (.pending, false))  // joined, not queued again
        #expect(book.ask(b, now: 10) == (.pending, true))
        #expect(book.peek(a) == .pending)
        #expect(book.nextLookup(now: 20) == a)
        #expect(book.nextLookup(now: 20) == b)
        #expect(book.nextLookup(now: 20) == nil)
        #expect(book.started == 2)
        book.finish(a, name: "r1.example")
        book.finish(b, name: nil)  // no name: cached too, so it is not asked again
        #expect(book.ask(a, now: 30) == (.known("r1.example"), false))
        #expect(book.ask(b, now: 30) == (.known(nil), false))
        #expect(book.peek(c) == .unavailable)
        #expect(book.nextLookup(now: 40) == nil)
    }

    @Test func aFullQueueRefusesInsteadOfGrowing() {
        var book = NameBook(cacheCapacity: 8, queueCapacity: 2, waitNanos: 1_000)
        #expect(book.ask(a, now: 0).answer == .pending)
        #expect(book.ask(b, now: 0).answer == .pending)
        #expect(book.ask(c, now: 0) == (.unavailable, false))
        #expect(book.refused == 1)
        #expect(book.nextLookup(now: 1) == a)
        #expect(book.ask(c, now: 2) == (.pending, true))  // room again
    }

    @Test func queuedLookupsNobodyWaitsForAreDropped() {
        var book = NameBook(cacheCapacity: 8, queueCapacity: 8, waitNanos: 1_000)
        _ = book.ask(a, now: 0)
        _ = book.ask(b, now: 0)
        _ = book.ask(b, now: 600)  // asked again: someone still waits for b
        #expect(book.nextLookup(now: 1_500) == b)
        #expect(book.abandoned == 1)
        #expect(book.peek(a) == .unavailable)  // forgotten: the next ask starts a fresh lookup
        #expect(book.ask(a, now: 1_600) == (.pending, true))
    }

    @Test func theCacheForgetsTheLeastRecentlyUsed() {
        var book = NameBook(cacheCapacity: 2, queueCapacity: 8, waitNanos: 1_000)
        for address in [a, b] {
            _ = book.ask(address, now: 0)
            book.finish(book.nextLookup(now: 0)!, name: "\(address)")
        }
        #expect(book.ask(a, now: 1).answer == .known("198.51.100.1"))  // a is now the most recent
        _ = book.ask(c, now: 1)
        book.finish(book.nextLookup(now: 1)!, name: nil)
        #expect(book.cachedCount == 2)
        #expect(book.peek(b) == .unavailable)  // b was least recently used
        #expect(book.peek(a) == .known("198.51.100.1"))
        #expect(book.peek(c) == .known(nil))
    }

    @Test func lruCacheKeepsOrderThroughManyOperations() {
        var cache = LRUCache<Int, Int>(capacity: 3)
        var model: [(Int, Int)] = []  // most recent last
        var rng = SeededRandom(seed: 5)
        for step in 0..<5_000 {
            let key = Int(rng.next() % 7)
            if rng.next() % 2 == 0 {
                cache.set(key, step)
                model.removeAll { $0.0 == key }
                model.append((key, step))
                if model.count > 3 { model.removeFirst() }
            } else {
                let value = cache.get(key)
                let index = model.firstIndex { $0.0 == key }
                #expect(value == index.map { model[$0].1 })
                if let index { model.append(model.remove(at: index)) }
            }
            #expect(cache.count == model.count)
        }
    }
}
