// The package's one place that starts threads (pthread, so the receive loop and the readers run on threads
// of their own, outside any executor): a started thread to join, a detached one, and a job whose result
// is given when joined.

import Glibc

/// Starts a thread running `body`: its id (join it, or detach it), or pthread_create's error, naming the
/// thread as `what` (`pthread_create(receive thread)`).
func startThread(_ what: String, _ body: @escaping @Sendable () -> Void) -> Result<pthread_t, SystemError> {
    let context = Unmanaged.passRetained(ThreadContext(body))
    var tid = pthread_t()
    let rc = pthread_create(&tid, nil, { raw in
        // SAFETY: `raw` is the retained ThreadContext passed below; taken exactly once here.
        Unmanaged<ThreadContext>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, context.toOpaque())
    guard rc == 0 else {
        context.release()
        return .failure(SystemError(operation: "pthread_create(\(what))", errno: rc))
    }
    return .success(tid)
}

/// Starts a detached thread running `body`, or throws pthread_create's error (naming the thread as `what`).
func spawnDetachedThread(_ what: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
    pthread_detach(try startThread(what, body).get())
}

/// `body` run on a thread of its own, its result given by `join` (which waits for it once; later calls
/// give the same result at once). When no thread can be started, `body` runs on the caller's thread
/// in `init`: the work is done either way, only not side by side.
final class ThreadJob<Value>: @unchecked Sendable {
    // @unchecked Sendable: `value` is written by the job's thread before it exits and read only after
    // `pthread_join` (which orders the two), or written and read on the creating thread when no thread
    // was started. `join` is called from the creating thread only.
    private var value: Value?
    private var thread: pthread_t?

    init(_ body: @escaping @Sendable () -> Value) {
        switch startThread("job", { [unowned(unsafe) self] in self.value = body() }) {
        case .success(let tid): thread = tid
        case .failure: value = body()
        }
    }

    /// Waits for the job (the first time) and gives its result.
    @discardableResult
    func join() -> Value {
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
        return value!
    }

    deinit { if let thread { pthread_join(thread, nil) } }
}

/// What a new thread runs.
private final class ThreadContext: @unchecked Sendable {
    // @unchecked Sendable: handed to exactly one new thread, never touched by the creator after.
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}
