// CheckedSize: products and sums of sizes read from a configuration file,
// which may overflow `Int`: an overflow is an invalid value naming the field,
// where unchecked arithmetic later (layouts, arenas) would trap.

enum CheckedSize {
    /// The product of `factors`, or `ModelConfigurationError.invalidValue` naming `field`.
    static func product(_ factors: Int..., field: String, _ what: String) throws -> Int {
        try factors.reduce(1) { total, factor in
            let (value, overflow) = total.multipliedReportingOverflow(by: factor)
            if overflow { throw ModelConfigurationError.invalidValue(field: field, reason: "\(what) overflows") }
            return value
        }
    }

    /// The sum of `terms`, or `ModelConfigurationError.invalidValue` naming `field`.
    static func sum(_ terms: Int..., field: String, _ what: String) throws -> Int {
        try terms.reduce(0) { total, term in
            let (value, overflow) = total.addingReportingOverflow(term)
            if overflow { throw ModelConfigurationError.invalidValue(field: field, reason: "\(what) overflows") }
            return value
        }
    }
}
