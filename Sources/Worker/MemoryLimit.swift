// MemoryLimit: the memory a worker may count on — its own limit when it has
// one (a cgroup: a container, a Slurm job under cgroups; a Slurm job's
// --mem), else its share of the host's, by the cores it uses.
import Foundation

/// The memory this process may count on.
enum MemoryLimit {
    /// The least of `physical` and the limits of the process's own: its
    /// cgroup's (v2 `memory.max`, v1 `memory.limit_in_bytes`, at the path
    /// `/proc/self/cgroup` names and at the mount's root, as containers show
    /// it) and its Slurm job's `--mem` (`SLURM_MEM_PER_NODE`, MiB). `own` is
    /// true when one of those limits applies. A value that is not a positive
    /// number below `physical` ("max", v1's unlimited 2⁶³ rounded to pages,
    /// a garbled file) is no limit.
    static func bytes(
        physical: UInt64 = ProcessInfo.processInfo.physicalMemory,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        procCgroup: String = "/proc/self/cgroup", cgroupRoot: String = "/sys/fs/cgroup"
    ) -> (bytes: UInt64, own: Bool) {
        var limits: [UInt64] = []
        if let mebibytes = environment["SLURM_MEM_PER_NODE"].flatMap({ UInt64($0.trimmingCharacters(in: .whitespaces)) }),
           mebibytes > 0, mebibytes < physical >> 20 {
            limits.append(mebibytes << 20)
        }
        for file in cgroupFiles(procCgroup: procCgroup, root: cgroupRoot) {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8),
                  let value = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)), value > 0, value < physical else { continue }
            limits.append(value)
        }
        guard let least = limits.min() else { return (physical, false) }
        return (least, true)
    }

    /// The files that may hold the process's cgroup memory limit.
    private static func cgroupFiles(procCgroup: String, root: String) -> [String] {
        var files = [root + "/memory.max", root + "/memory/memory.limit_in_bytes"]
        guard let lines = try? String(contentsOfFile: procCgroup, encoding: .utf8) else { return files }
        // "0::/path" (v2) or "N:memory:/path" (v1; controllers may be listed together, "N:cpu,memory:/path").
        for line in lines.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[2].hasPrefix("/"), !fields[2].contains("..") else { continue }
            let path = fields[2] == "/" ? "" : String(fields[2])
            if fields[0] == "0" && fields[1].isEmpty { files.append(root + path + "/memory.max") }
            if fields[1].split(separator: ",").contains("memory") { files.append(root + "/memory" + path + "/memory.limit_in_bytes") }
        }
        return files
    }
}
