// ClaimCheck: one of the study's claims set against this run's numbers.
import Foundation

/// Whether a run bears out a claim.
public enum ClaimVerdict: String, Sendable, Equatable {
    case holds
    case differs
    /// The run cannot tell: a condition is absent or has too few epochs.
    case notMeasured = "not measured"
}

/// A claim of the study, the verdict and the numbers behind it.
public struct ClaimCheck: Sendable, Equatable {
    /// The claim's number in the study's list (1–7).
    public var number: Int
    public var claim: String
    public var verdict: ClaimVerdict
    /// This run's measurements, in words and numbers.
    public var measured: String
}

/// The claims checked on one group of lines: the study's arms at one value
/// of an axis the run crosses them with (`StudyClaims.groups`).
public struct ClaimGroup: Sendable, Equatable {
    /// The group's values, as line labels name them ("bf16", "batch 8").
    public var label: String
    public var claims: [ClaimCheck]

    public init(label: String, claims: [ClaimCheck]) {
        self.label = label
        self.claims = claims
    }
}
