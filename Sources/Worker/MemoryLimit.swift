// MemoryLimit: the memory a worker may count on — its own limit when it has
// one (a cgroup: a container, a Slurm job under cgroups; a Slurm job's
// memory), else the host's.
import Foundation

/// The memory this process may count on.
enum MemoryLimit {
    /// The least of `physical` and the limits of the process's own: its
    /// cgroups' (v2 `memory.max`, v1 `memory.limit_in_bytes`) at the path
    /// `/proc/self/cgroup` names and at every ancestor of it up to the
    /// mount's root (Slurm sets the job's limit on `job_N`, above the step
    /// and task cgroups the process sits in), and its Slurm job's memory
    /// (`SLURM_MEM_PER_NODE`, MiB, or `SLURM_MEM_PER_CPU` times
    /// `SLURM_CPUS_ON_NODE`). `own` is true when one of those limits applies.
    /// A value that is not a positive number below `physical` ("max", v1's
    /// unlimited 2⁶³ rounded to pages, a garbled file) is no limit.
    static func bytes(
        physical: UInt64 = ProcessInfo.processInfo.physicalMemory,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        procCgroup: String = "/proc/self/cgroup", cgroupRoot: String = "/sys/fs/cgroup"
    ) -> (bytes: UInt64, own: Bool) {
        func number(_ text: String?) -> UInt64? { text.flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }
        var limits: [UInt64] = []
        let perCPU = number(environment["SLURM_MEM_PER_CPU"]).flatMap { perCPU in
            number(environment["SLURM_CPUS_ON_NODE"]).map { perCPU.multipliedReportingOverflow(by: $0) }
        }.flatMap { $0.overflow ? nil : $0.partialValue }
        for mebibytes in [number(environment["SLURM_MEM_PER_NODE"]), perCPU].compactMap({ $0 }) where mebibytes > 0 && mebibytes < physical >> 20 {
            limits.append(mebibytes << 20)
        }
        for file in cgroupFiles(procCgroup: procCgroup, root: cgroupRoot) {
            guard let value = number(try? String(contentsOfFile: file, encoding: .utf8)), value > 0, value < physical else { continue }
            limits.append(value)
        }
        guard let least = limits.min() else { return (physical, false) }
        return (least, true)
    }

    /// The files that may hold the process's cgroup memory limits: at the
    /// path `/proc/self/cgroup` names and at each of its ancestors.
    private static func cgroupFiles(procCgroup: String, root: String) -> [String] {
        var files = [root + "/memory.max", root + "/memory/memory.limit_in_bytes"]
        guard let lines = try? String(contentsOfFile: procCgroup, encoding: .utf8) else { return files }
        // "0::/path" (v2) or "N:memory:/path" (v1; controllers may be listed together, "N:cpu,memory:/path").
        for line in lines.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[2].hasPrefix("/") else { continue }
            let parts = fields[2].split(separator: "/")
            guard !parts.contains(where: { $0 == ".." || $0 == "." }) else { continue }
            let ancestors = parts.indices.map { "/" + parts[...$0].joined(separator: "/") }
            if fields[0] == "0" && fields[1].isEmpty { files += ancestors.map { root + $0 + "/memory.max" } }
            if fields[1].split(separator: ",").contains("memory") { files += ancestors.map { root + "/memory" + $0 + "/memory.limit_in_bytes" } }
        }
        return files
    }
}
