// ResourceUsage: what the process has used — the peak resident set a trial
// summary reports, the CPU time the coordinator's statistics report.
import Foundation

/// Process resource figures.
public enum ResourceUsage {
    /// Peak resident set size of this process, in bytes.
    public static var peakResidentBytes: Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return usage.ru_maxrss * 1024
    }

    /// CPU time (user and system) this process has used so far, in seconds.
    public static var cpuSeconds: Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}

