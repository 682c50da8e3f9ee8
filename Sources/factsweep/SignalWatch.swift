// SignalWatch: SIGINT/SIGTERM turned into a stop request that long-running
// commands poll (train, run, coordinator) or act on (worker). A second SIGINT
// exits at once.
import Foundation

final class SignalWatch: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var sources: [any DispatchSourceSignal] = []

    /// `onFirst` runs (on a background queue) when the first signal arrives;
    /// `message`, when given, is written to standard error then.
    init(_ signals: [Int32] = [SIGINT, SIGTERM], message: String? = nil, onFirst: @escaping @Sendable (Int32) -> Void = { _ in }) {
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                let seen = self.lock.withLock { self.count += 1; return self.count }
                if seen > 1 {
                    if number == SIGINT { exit(130) }
                    return
                }
                if let message { FileHandle.standardError.write(Data(("\n" + message + "\n").utf8)) }
                onFirst(number)
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Whether a signal has arrived.
    var isSet: Bool { lock.withLock { count > 0 } }
}
