// ThreadFlag: a yes/no setting of the calling thread, set around a region of
// code and restored after it — what the product precision and the
// single-threaded sections are, so that trials side by side keep their own.
import Foundation

/// A per-thread flag in a pthread key, off on every thread until a region sets it.
struct ThreadFlag: @unchecked Sendable {
    private let key: pthread_key_t

    init() {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        self.key = key
    }

    /// Whether the calling thread's flag is on.
    var isSet: Bool { pthread_getspecific(key) != nil }

    /// Runs `body` with the calling thread's flag at `value`, restoring the previous value after.
    func run<Result>(_ value: Bool, _ body: () throws -> Result) rethrows -> Result {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, value ? UnsafeRawPointer(bitPattern: 1) : nil)
        defer { pthread_setspecific(key, previous) }
        return try body()
    }
}
