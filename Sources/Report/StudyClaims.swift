// StudyClaims: the seven claims of "Simple Fact Learning by SLMs", each
// checked against a run's condition curves. Arms are found by method, rank
// and alpha; a claim the run cannot decide is "not measured", never guessed.
import Foundation

public enum StudyClaims {
    /// Plateau comparisons need curves that had time to settle.
    public static let minimumEpochs = 10
    /// Points of a mean curve averaged as its plateau.
    public static let plateauPoints = 5

    /// Checks every claim against `conditions` (the first condition of each arm is used).
    public static func check(_ conditions: [ConditionAggregate]) -> [ClaimCheck] {
        let arms = arms(conditions)
        return [fullAccuracy(arms), fullLoss(arms), loraBelowFull(arms), rank8AboveRank4(arms), qloraSlower(arms),
                ia3Flat(arms), runtimeOrder(arms)]
    }

    /// The line each arm's claims read: the first condition of the arm.
    static func arms(_ conditions: [ConditionAggregate]) -> [StudyArm: ConditionAggregate] {
        var arms: [StudyArm: ConditionAggregate] = [:]
        for condition in conditions {
            if let arm = condition.arm, arms[arm] == nil { arms[arm] = condition }
        }
        return arms
    }

    /// Where the run crosses the study with another axis — each arm's lines
    /// differing in settings other than those that make the arm (precision,
    /// batch size, …) — the arms' lines grouped by their values there, one
    /// group per value: f32 and bf16 under a precision axis. Nil unless there
    /// are two groups or more and each holds exactly one line of every arm
    /// the run has; the claims then read each arm's first line.
    public static func groups(_ conditions: [ConditionAggregate]) -> [ClaimGroup]? {
        let armed = conditions.filter { $0.arm != nil }
        // The settings each arm's lines differ in, other than those that make the arm: within a
        // condition (a grid axis) or across conditions of one arm (a precision set per condition).
        var linesByArm: [StudyArm: [TrialSettings]] = [:]
        for line in armed {
            if let arm = line.arm { linesByArm[arm, default: []].append(line.lineSettings) }
        }
        let axes = linesByArm.values.filter { $0.count > 1 }
            .reduce(into: Set<String>()) { $0.formUnion(TrialSettings.differingPaths($1)) }
            .subtracting(armPaths)
        guard !axes.isEmpty else { return nil }
        var labels: [String] = []
        var members: [String: [ConditionAggregate]] = [:]
        for line in armed {
            let label = line.lineSettings.labelParts(differing: axes).joined(separator: ", ")
            if members[label] == nil { labels.append(label) }
            members[label, default: []].append(line)
        }
        let arms = Set(armed.compactMap(\.arm))
        let complete = labels.allSatisfy { label in
            let held = (members[label] ?? []).compactMap(\.arm)
            return held.count == arms.count && Set(held) == arms
        }
        guard labels.count > 1, complete else { return nil }
        return labels.map { ClaimGroup(label: $0, claims: check(members[$0] ?? [])) }
    }

    /// The settings that make an arm (`StudyArm`): lines differing in these are other arms, not another axis.
    static let armPaths: Set<String> = ["training.method.kind", "training.method.rank", "training.method.alpha"]

    /// The lines the claims read, in the conditions' order, where an arm has
    /// several (a grid axis over precision, learning rate, …): the report says
    /// which one each claim was checked on.
    static func linesReadAmongSeveral(_ conditions: [ConditionAggregate]) -> [String] {
        let read = arms(conditions)
        return conditions.compactMap { condition in
            guard let arm = condition.arm, read[arm]?.condition == condition.condition,
                  conditions.filter({ $0.arm == arm }).count > 1 else { return nil }
            return condition.condition
        }
    }

    static func fullAccuracy(_ arms: [StudyArm: ConditionAggregate]) -> ClaimCheck {
        let claim = "Full fine-tuning exceeds 90% accuracy within 3 epochs"
        guard let full = arms[.full], let last = full.last(.accuracy) else {
            return ClaimCheck(number: 1, claim: claim, verdict: .notMeasured, measured: missing([.full], arms))
        }
        if let epoch = full.firstEpoch(.accuracy, where: { $0 > 0.9 }) {
            let value = full.accuracy.first { $0.epoch == epoch }?.spread.mean ?? 0
            let measured = "mean accuracy first above 0.9 at epoch \(epoch) (\(accuracy(value)))"
            if epoch <= 3 { return ClaimCheck(number: 1, claim: claim, verdict: .holds, measured: measured) }
            // Below 0.9 at epoch 3 itself decides it; evaluations only before or after epoch 3 do not.
            if full.accuracy.contains(where: { $0.epoch == 3 }) {
                return ClaimCheck(number: 1, claim: claim, verdict: .differs, measured: measured)
            }
            let evaluated = full.accuracy.filter { $0.epoch >= 1 && $0.epoch <= 3 }.map { "\($0.epoch)" }
            return ClaimCheck(number: 1, claim: claim, verdict: .notMeasured,
                              measured: measured + "; epoch 3 was not evaluated ("
                                  + (evaluated.isEmpty ? "no evaluation before epoch \(epoch)"
                                                       : "evaluated at epochs \(evaluated.joined(separator: ", ")) only") + ")")
        }
        let best = full.accuracy.map(\.spread.mean).max() ?? last.spread.mean
        let text = "never above 0.9 by epoch \(last.epoch) (best mean \(accuracy(best)))"
        return ClaimCheck(number: 1, claim: claim, verdict: last.epoch >= 3 ? .differs : .notMeasured, measured: text)
    }

    static func fullLoss(_ arms: [StudyArm: ConditionAggregate]) -> ClaimCheck {
        let claim = "Full fine-tuning's loss is near zero (< 0.05) within 100 epochs"
        guard let full = arms[.full], let last = full.last(.loss) else {
            return ClaimCheck(number: 2, claim: claim, verdict: .notMeasured, measured: missing([.full], arms))
        }
        if let epoch = full.firstEpoch(.loss, where: { $0 < 0.05 }) {
            let value = full.loss.first { $0.epoch == epoch }?.spread.mean ?? 0
            return ClaimCheck(number: 2, claim: claim, verdict: epoch <= 100 ? .holds : .differs,
                              measured: "mean loss first below 0.05 at epoch \(epoch) (\(loss(value)))")
        }
        let text = "mean loss \(loss(last.spread.mean)) at epoch \(last.epoch), never below 0.05"
        if last.epoch >= 100 { return ClaimCheck(number: 2, claim: claim, verdict: .differs, measured: text) }
        return ClaimCheck(number: 2, claim: claim, verdict: .notMeasured,
                          measured: text + "; the run has not reached epoch 100")
    }

    static func loraBelowFull(_ arms: [StudyArm: ConditionAggregate]) -> ClaimCheck {
        let claim = "Both LoRA settings stabilise below full fine-tuning"
        guard let plateaus = plateaus(.accuracy, of: [.full, .loraRank4, .loraRank8], arms) else {
            return ClaimCheck(number: 3, claim: claim, verdict: .notMeasured,
                              measured: notSettled([.full, .loraRank4, .loraRank8], arms))
        }
        let (full, rank4, rank8) = (plateaus[0], plateaus[1], plateaus[2])
        return ClaimCheck(number: 3, claim: claim, verdict: rank4 < full && rank8 < full ? .holds : .differs,
                          measured: "plateau accuracy: full \(accuracy(full)), LoRA r=4 \(accuracy(rank4)), LoRA r=8 \(accuracy(rank8))")
    }

    static func rank8AboveRank4(_ arms: [StudyArm: ConditionAggregate]) -> ClaimCheck {
        let claim = "LoRA r=8 ends slightly (by at most 0.1) above r=4"
        guard let plateaus = plateaus(.accuracy, of: [.loraRank4, .loraRank8], arms) else {
            return ClaimCheck(number: 4, claim: claim, verdict: .notMeasured, measured: notSettled([.loraRank4, .loraRank8], arms))
        }
        let gap = plateaus[1] - plateaus[0]
        return ClaimCheck(number: 4, claim: claim, verdict: gap > 0 && gap <= 0.1 ? .holds : .differs,
                          measured: "plateau accuracy: r=8 \(accuracy(plateaus[1])), r=4 \(accuracy(plateaus[0])) "
                              + "(difference \(signed(gap)))")
    }

    static func qloraSlower(_ arms: [StudyArm: ConditionAggregate]) -> ClaimCheck {
        let claim = "QLoRA follows LoRA (r=8, plateaus within 0.1) but reaches a given accuracy later"
        guard let plateaus = plateaus(.accuracy, of: [.loraRank8, .qloraRank8], arms),
              let lora = arms[.loraRank8], let qlora = arms[.qloraRank8] else {
            return ClaimCheck(number: 5, claim: claim, verdict: .notMeasured, measured: notSettled([.loraRank8, .qloraRank8], arms))
        }
        // A level both curves reach: 90% of the lower plateau.
        let level = 0.9 * min(plateaus[0], plateaus[1])
        let loraEpoch = lora.firstEpoch(.accuracy, where: { $0 >= level })
        let qloraEpoch = qlora.firstEpoch(.accuracy, where: { $0 >= level })
        let follows = abs(plateaus[0] - plateaus[1]) <= 0.1
        let slower = (loraEpoch ?? Int.max) < (qloraEpoch ?? Int.max)
        let text = "accuracy \(accuracy(level)) (90% of the lower plateau) first reached at epoch "
            + "\(loraEpoch.map(String.init) ?? "—") by LoRA r=8, \(qloraEpoch.map(String.init) ?? "—") by QLoRA; "
            + "plateaus \(accuracy(plateaus[0])) and \(accuracy(plateaus[1]))"
        return ClaimCheck(number: 5, claim: claim, verdict: follows && slower ? .holds : .differs, measured: text)
    }

    static func ia3Flat(_ arms: [StudyArm: ConditionAggregate]) -> ClaimCheck {
        let claim = "IA³ stays at 0.2–0.3 accuracy; its loss goes from about 2.5 to just under 2.0"
        guard let ia3 = arms[.ia3], let first = ia3.loss.first, let last = ia3.last(.loss),
              !ia3.accuracy.isEmpty, last.epoch >= minimumEpochs else {
            return ClaimCheck(number: 6, claim: claim, verdict: .notMeasured, measured: notSettled([.ia3], arms))
        }
        let accuracies = ia3.accuracy.map(\.spread.mean)
        let (low, high) = (accuracies.min() ?? 0, accuracies.max() ?? 0)
        // Two decimals, as the study states its numbers.
        let accuracyHolds = (low * 100).rounded() >= 20 && (high * 100).rounded() <= 30
        let startHolds = abs(first.spread.mean - 2.5) <= 0.25
        let endHolds = last.spread.mean < 2.0 && last.spread.mean >= 1.8
        return ClaimCheck(number: 6, claim: claim, verdict: accuracyHolds && startHolds && endHolds ? .holds : .differs,
                          measured: "mean accuracy \(accuracy(low))–\(accuracy(high)); mean loss \(loss(first.spread.mean)) "
                              + "at epoch \(first.epoch) → \(loss(last.spread.mean)) at epoch \(last.epoch)")
    }

    static func runtimeOrder(_ arms: [StudyArm: ConditionAggregate]) -> ClaimCheck {
        let claim = "Training time per epoch: full highest, LoRA r=4 cheapest, r=8 slightly more (≤ 1.5×), "
            + "QLoRA slower than LoRA, IA³ between LoRA r=8 and QLoRA"
        let needed = StudyArm.allCases
        let seconds = needed.compactMap { arms[$0]?.trainSecondsPerEpoch?.mean }
        guard seconds.count == needed.count else {
            return ClaimCheck(number: 7, claim: claim, verdict: .notMeasured, measured: missing(needed, arms))
        }
        let (full, rank4, rank8, qlora, ia3) = (seconds[0], seconds[1], seconds[2], seconds[3], seconds[4])
        let checks: [(String, Bool)] = [
            ("full highest", full > max(rank4, rank8, qlora, ia3)),
            ("LoRA r=4 cheapest", rank4 < min(full, rank8, qlora, ia3)),
            ("r=8 slightly above r=4", rank8 > rank4 && rank8 <= 1.5 * rank4),
            ("QLoRA slower than LoRA", qlora > max(rank4, rank8)),
            ("IA³ between LoRA r=8 and QLoRA", ia3 > rank8 && ia3 < qlora),
        ]
        let failed = checks.filter { !$0.1 }.map(\.0)
        var text = zip(needed, seconds).map { "\($0.label) \(ReportNumber.fixed($1, 2)) s" }.joined(separator: ", ")
        if !failed.isEmpty { text += "; not so: " + failed.joined(separator: ", ") }
        return ClaimCheck(number: 7, claim: claim, verdict: failed.isEmpty ? .holds : .differs, measured: text)
    }

    /// Each arm's plateau of `metric`, or nil when one is absent or too short.
    private static func plateaus(_ metric: ReportMetric, of needed: [StudyArm], _ arms: [StudyArm: ConditionAggregate]) -> [Double]? {
        let values = needed.compactMap { arm -> Double? in
            guard let condition = arms[arm], let last = condition.last(metric), last.epoch >= minimumEpochs else { return nil }
            return condition.plateau(metric, points: plateauPoints)
        }
        return values.count == needed.count ? values : nil
    }

    private static func missing(_ needed: [StudyArm], _ arms: [StudyArm: ConditionAggregate]) -> String {
        let absent = needed.filter { arms[$0] == nil }
        if !absent.isEmpty { return "no condition for " + absent.map(\.label).joined(separator: ", ") }
        let empty = needed.filter { arms[$0]?.lastEpoch == 0 }
        return "no epochs recorded yet for " + empty.map(\.label).joined(separator: ", ")
    }

    private static func notSettled(_ needed: [StudyArm], _ arms: [StudyArm: ConditionAggregate]) -> String {
        let absent = needed.filter { arms[$0] == nil }
        if !absent.isEmpty { return missing(needed, arms) }
        let short = needed.compactMap { arm -> String? in
            guard let condition = arms[arm] else { return nil }
            let last = condition.last(.accuracy)?.epoch ?? 0
            return last < minimumEpochs ? "\(arm.label) evaluated to epoch \(last)" : nil
        }
        return "too few epochs (needs \(minimumEpochs)): " + short.joined(separator: ", ")
    }

    private static func accuracy(_ value: Double) -> String { ReportNumber.fixed(value, 3) }
    private static func loss(_ value: Double) -> String { ReportNumber.significant(value) }
    private static func signed(_ value: Double) -> String { (value >= 0 ? "+" : "") + ReportNumber.fixed(value, 3) }
}
