// ResourceUsage: what the process has used, for reports.
import Foundation

/// Process resource figures.
public enum ResourceUsage {
    /// Peak resident set size of this process, in bytes.
    public static var peakResidentBytes: Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return usage.ru_maxrss * 1024
    }
}

