// TestPorts: TCP ports for tests that must name one before a process binds
// it (a coordinator whose address workers are given).
import Foundation

public enum TestPorts {
    /// A port below Linux's default ephemeral range (32768–60999), where the
    /// kernel takes the local ports of outgoing connections: the tests make
    /// many, and a port drawn from inside that range was once in use by one
    /// ("Address already in use"). Tests that can let the kernel choose
    /// bind `tcp://127.0.0.1:*` instead.
    public static func random() -> Int { Int.random(in: 20_000..<32_768) }
}
