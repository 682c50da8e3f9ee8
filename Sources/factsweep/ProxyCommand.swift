// TCPProxy: `factsweep bench proxy` — a plain TCP relay between workers and
// the coordinator, for the chaos benchmark: killing it (SIGKILL) resets every
// connection through it, as a broken link would, and a new one on the same
// port lets the peers reconnect. One thread per direction of each connection;
// no parsing, no buffering beyond one read.
import ArgumentParser
import Foundation

struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Relay TCP connections from a local port to another (the chaos benchmark's breakable link).",
        shouldDisplay: false)

    @Option(name: .long, help: "Port to listen on, on 127.0.0.1.")
    var listen: Int

    @Option(name: .long, help: "Port to relay to, on 127.0.0.1.")
    var to: Int

    func validate() throws {
        guard (1...65535).contains(listen), (1...65535).contains(to) else { throw ValidationError("ports are 1…65535") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let server = try TCPSocket.listening(port: listen)
        FileHandle.standardOutput.write(Data("proxy listening on 127.0.0.1:\(listen), relaying to 127.0.0.1:\(to)\n".utf8))
        while true {
            let client = accept(server, nil, nil)
            guard client >= 0 else { continue }
            guard let upstream = try? TCPSocket.connected(port: to) else {
                close(client)
                continue
            }
            TCPSocket.relay(client, upstream)
        }
    }
}

/// Blocking loopback sockets for the proxy.
enum TCPSocket {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    static func listening(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = loopback(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 128) == 0 else {
            close(fd)
            throw Failure(description: "cannot listen on 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    static func connected(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var address = loopback(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw Failure(description: "cannot connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// Copies bytes both ways until either side closes; then closes both.
    static func relay(_ a: Int32, _ b: Int32) {
        let pair = RelayPair(a, b)
        Thread { pair.pump(a, b) }.start()
        Thread { pair.pump(b, a) }.start()
    }
}

/// Two sockets relayed to each other; the second direction to end closes both.
private final class RelayPair: @unchecked Sendable {
    private let a: Int32, b: Int32
    private let lock = NSLock()
    private var open = 2

    init(_ a: Int32, _ b: Int32) { self.a = a; self.b = b }

    func pump(_ from: Int32, _ to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = read(from, &buffer, buffer.count)
            guard n > 0 else { break }
            var sent = 0
            while sent < n {
                let m = buffer[sent..<n].withUnsafeBytes { write(to, $0.baseAddress, n - sent) }
                guard m > 0 else { break }
                sent += m
            }
            guard sent == n else { break }
        }
        shutdown(from, Int32(SHUT_RDWR))
        shutdown(to, Int32(SHUT_RDWR))
        lock.lock()
        open -= 1
        let last = open == 0
        lock.unlock()
        if last { close(a); close(b) }
    }
}
