// PacketCapture: tshark recording one TCP port on loopback into a pcap file,
// to check what an eavesdropper on the coordinator's port would read.
// tshark is required: scripts/setup.sh --tests installs it, and a missing one
// fails the test (it never skips).
import Foundation
import TestSupport

final class PacketCapture {
    static let tshark = ["/usr/bin/tshark", "/usr/sbin/tshark", "/bin/tshark"].first { FileManager.default.isExecutableFile(atPath: $0) }

    let file: URL
    private let child: Child

    /// Starts capturing `port` on `lo`; returns once tshark says it is capturing.
    init(port: Int, file: URL, log: URL) throws {
        guard let tshark = Self.tshark else {
            throw KeyTestError("tshark is not installed: run scripts/setup.sh --tests (apt-get install tshark)")
        }
        self.file = file
        // Writing the pcap as root needs a file tshark's dumpcap may create.
        _ = FileManager.default.createFile(atPath: file.path, contents: nil, attributes: [.posixPermissions: 0o666])
        child = try Child(executable: URL(fileURLWithPath: tshark), ["-i", "lo", "-f", "tcp port \(port)", "-w", file.path], log: log)
        let deadline = Date().addingTimeInterval(20)
        while !child.output.contains("Capturing on") && child.isRunning && Date() < deadline { usleep(50_000) }
        guard child.output.contains("Capturing on") else { throw KeyTestError("tshark did not start capturing:\n\(child.output)") }
    }

    /// Stops the capture (SIGINT lets tshark flush) and returns the captured bytes.
    func finish() throws -> Data {
        let dumpcap = ProcessTree.descendants(of: child.pid)
        if child.isRunning { kill(child.pid, SIGINT) }
        if !child.wait(seconds: 10) { child.stop() }
        // tshark stops its dumpcap on SIGINT, but not if it was killed: never leave one capturing.
        for pid in dumpcap { kill(pid, SIGKILL) }
        return try Data(contentsOf: file)
    }

    deinit { child.stop() }
}
