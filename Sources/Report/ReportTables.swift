// ReportTables: the report's tables — summary per condition, claims,
// forgetting, size and memory, answers — as plain-text cells.
import Foundation

enum ReportTables {
    /// The accuracy the summary counts epochs to.
    static let accuracyTarget = 0.9

    static func summary(_ conditions: [ConditionAggregate]) -> ReportTable {
        let rows = conditions.map { condition -> [String] in
            let reached = condition.firstEpoch(.accuracy, where: { $0 >= accuracyTarget })
            let lastEvaluated = condition.last(.accuracy)?.epoch
            let toTarget = reached.map(String.init) ?? lastEvaluated.map { "not by \($0)" } ?? "—"
            let stopped = condition.trials.filter { $0.status == "stopped" }.count
            return [condition.condition, condition.settings,
                    "\(condition.doneTrials)/\(condition.trials.count)" + (stopped > 0 ? " (\(stopped) stopped)" : ""),
                    "\(condition.lastEpoch)/\(condition.plannedEpochs)", ReportNumber.spread(condition.finalAccuracy, 3),
                    toTarget, ReportNumber.spread(condition.trainSecondsPerEpoch, 2), ReportNumber.spread(condition.finalLoss) { ReportNumber.significant($0) }]
        }
        return ReportTable(headers: ["condition", "settings", "trials done/total", "epochs recorded/planned",
                                     "final accuracy", "epochs to 0.9 accuracy", "training s/epoch", "final loss"],
                           rows: rows, numericColumns: [2, 3, 4, 5, 6, 7])
    }

    /// The trials a stopping rule ended, with the rule, epoch and values that
    /// decided it, each under its line (the condition, and what sets it apart
    /// under a grid axis); nil when none was.
    static func stopped(_ trials: [ReportTrial], lines: [String: String]) -> ReportTable? {
        let rows = trials.compactMap { trial -> [String]? in
            guard trial.status == "stopped", let decision = trial.stopping else { return nil }
            return [String(trial.key.prefix(12)), lines[trial.key] ?? trial.condition, ReportNumber.compact(trial.learningRate), "\(trial.seed)",
                    decision.rule, "\(decision.epoch)", "\(trial.lastEpoch)/\(trial.plannedEpochs)", decision.reason]
        }
        guard !rows.isEmpty else { return nil }
        return ReportTable(headers: ["trial", "condition", "lr", "seed", "rule", "stopped at epoch", "epochs recorded/planned", "why"],
                           rows: rows, numericColumns: [2, 3, 5, 6])
    }

    static func claims(_ checks: [ClaimCheck]) -> ReportTable {
        ReportTable(headers: ["#", "the study's claim", "this run", "measured"],
                    rows: checks.map { ["\($0.number)", $0.claim, $0.verdict.rawValue, $0.measured] },
                    numericColumns: [0], verdictColumn: 2)
    }

    static func forgetting(_ conditions: [ConditionAggregate], storesSummaries: Bool) -> [ReportBlock] {
        guard conditions.contains(where: { $0.firstPerplexity != nil }) else {
            return [.paragraph("No perplexity recorded: the trials measure no held-out text (held_out \"none\").")]
        }
        let rows = conditions.map { condition -> [String] in
            let before = SeedSpread(condition.trials.compactMap { $0.summary?.perplexityBefore.map(Double.init) })
            var change = "—"
            if let first = condition.firstPerplexity?.mean, let last = condition.lastPerplexity?.mean {
                change = (last >= first ? "+" : "") + ReportNumber.fixed(100 * (last - first) / first, 1) + "%"
            }
            return [condition.condition, before.map { ReportNumber.spread($0, 2) } ?? (storesSummaries ? "none yet" : "not stored"),
                    ReportNumber.spread(condition.firstPerplexity, 2), ReportNumber.spread(condition.lastPerplexity, 2), change]
        }
        let note = storesSummaries
            ? "Perplexity before training comes from finished trials' summaries; running trials have none yet."
            : "This run database does not store trial summaries (it predates migration v2-trial-summary): "
                + "perplexity before training is not available, only the evaluated epochs."
        return [.table(ReportTable(headers: ["condition", "before training", "at first evaluation", "at last evaluation",
                                             "first → last"],
                                   rows: rows, numericColumns: [1, 2, 3, 4])),
                .paragraph(note)]
    }

    static func memory(_ conditions: [ConditionAggregate], storesSummaries: Bool) -> [ReportBlock] {
        guard storesSummaries else {
            return [.paragraph("Not stored: this run database predates trial summaries (migration v2-trial-summary), "
                + "which carry trainable parameters, base weight bytes and peak RSS.")]
        }
        let rows = conditions.compactMap { condition -> [String]? in
            let summaries = condition.trials.compactMap(\.summary)
            guard !summaries.isEmpty else { return nil }
            func largest(_ values: [Int?], _ format: (Double) -> String) -> String {
                values.compactMap { $0 }.max().map { format(Double($0)) } ?? "—"
            }
            return [condition.condition, condition.settings, "\(summaries.count)",
                    largest(summaries.map { $0.trainableParameters }, ReportNumber.count),
                    largest(summaries.map(\.baseWeightBytes), ReportNumber.bytes),
                    largest(summaries.map { $0.peakResidentBytes }, ReportNumber.bytes)]
        }
        guard !rows.isEmpty else {
            return [.paragraph("No trial has finished yet: trainable parameters, base weight bytes and peak RSS arrive "
                + "with each trial's final summary.")]
        }
        return [.table(ReportTable(headers: ["condition", "settings", "finished trials", "trainable parameters",
                                             "base weights", "peak RSS (largest)"],
                                   rows: rows, numericColumns: [2, 3, 4, 5])),
                .paragraph(memoryNote(conditions))]
    }

    static func memoryNote(_ conditions: [ConditionAggregate]) -> String {
        var note = "Peak RSS is the worker process's, which may hold other trials' buffers too; the largest over finished trials is shown."
        let unfinished = conditions.filter { !$0.trials.contains { $0.summary != nil } }.map(\.condition)
        if !unfinished.isEmpty { note += " No finished trial yet: " + unfinished.joined(separator: ", ") + "." }
        return note
    }

    /// For each condition, the answers of its furthest-evaluated trial (the
    /// first such seed), at that trial's last evaluation.
    static func answers(_ conditions: [ConditionAggregate], _ answers: [ReportAnswer]) -> [ReportBlock] {
        var byTrial: [String: [ReportAnswer]] = [:]
        for answer in answers { byTrial[answer.trialKey, default: []].append(answer) }
        var blocks: [ReportBlock] = []
        for condition in conditions {
            let candidates = condition.trials.compactMap { trial in byTrial[trial.key].map { (trial, $0) } }
            guard let (trial, rows) = candidates.max(by: { ($0.1.first?.epoch ?? 0) < ($1.1.first?.epoch ?? 0) }),
                  let epoch = rows.first?.epoch else {
                blocks.append(.heading(condition.condition, level: 3))
                blocks.append(.paragraph("No evaluation recorded yet."))
                continue
            }
            blocks.append(.heading("\(condition.condition): seed \(trial.seed), epoch \(epoch) of \(trial.plannedEpochs)", level: 3))
            blocks.append(.table(ReportTable(
                headers: ["question", "reference", "answer", "similarity"],
                rows: rows.map(\.result).map { [$0.question + ($0.paraphrase ? " (paraphrase)" : ""), $0.reference, $0.answer,
                                                  ReportNumber.fixed(Double($0.similarity), 3)] },
                numericColumns: [3])))
        }
        return blocks
    }
}
