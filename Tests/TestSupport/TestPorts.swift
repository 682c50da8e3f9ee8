// TestPorts: TCP ports for tests that must name one before a process binds
// it (a coordinator whose address workers are given).
import Foundation

public enum TestPorts {
    /// Below Linux's default ephemeral range (32768–60999), where the kernel
    /// takes the local ports of outgoing connections: the tests make many, and
    /// a port drawn from inside that range was once in use by one ("Address
    /// already in use").
    static let range = 20_000..<32_768

    private static let lock = NSLock()
    /// The next port to offer; starts at a random place so that two test
    /// processes at once (two clones' CI) rarely walk the same ports.
    nonisolated(unsafe) private static var next = Int.random(in: range)

    /// A port no other call in this process has returned, that nothing had
    /// bound when it was chosen. Tests run in parallel, and a port drawn at
    /// random for each could come up twice in one run. Tests that can let
    /// the kernel choose bind `tcp://127.0.0.1:*` instead.
    public static func unused() -> Int {
        lock.withLock {
            for _ in range {
                let port = next
                next = next + 1 == range.upperBound ? range.lowerBound : next + 1
                if isFree(port) { return port }
            }
            fatalError("no free TCP port in \(range)")
        }
    }

    /// Whether a socket can bind `port` on every address now (as `tcp://*:port` does).
    static func isFree(_ port: Int) -> Bool {
        guard let fd = bound(port) else { return false }
        close(fd)
        return true
    }

    /// A socket bound to `port` on every address, for the caller to close; nil when it cannot be.
    static func bound(_ port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr = in_addr(s_addr: INADDR_ANY)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if !bound { close(fd) }
        return bound ? fd : nil
    }
}
