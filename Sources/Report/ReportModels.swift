// ReportModels: the report's header table of the model each condition trained
// — its file, its own name, how the file stores the weights and what training
// used, its size — because every number below depends on it: the default
// model is a 4-bit GGUF dequantised to Float32, so full fine-tuning starts
// from 4-bit-rounded weights and QLoRA rounds its projections a second time.
// The descriptions come from the workers' summaries (docs/protocol.md, `done`).

import Trial

enum ReportModels {
    /// The model table, with a note on quantised weights when one was
    /// dequantised and on models not yet described; nothing for a run without trials.
    static func blocks(_ trials: [ReportTrial]) -> [ReportBlock] {
        // One row per model path and storage: QLoRA trials hold the same file's projections as NF4,
        // LoRA and IA³ trials in bf16 precision as bf16.
        struct Group { var model: String; var storage: LinearStorage; var conditions: [String]; var facts: ModelDescription? }
        var groups: [Group] = []
        for trial in trials {
            let storage = Self.storage(of: trial)
            let described = trial.summary?.model
            if let i = groups.firstIndex(where: { $0.model == trial.model && $0.storage == storage }) {
                if !groups[i].conditions.contains(trial.condition) { groups[i].conditions.append(trial.condition) }
                groups[i].facts = groups[i].facts ?? described
            } else {
                groups.append(Group(model: trial.model, storage: storage, conditions: [trial.condition], facts: described))
            }
        }
        guard !groups.isEmpty else { return [] }
        let rows = groups.map { group -> [String] in
            let file = group.facts?.file ?? group.model.split(separator: "/").last.map(String.init) ?? group.model
            return [group.conditions.joined(separator: ", "), file, group.facts?.name ?? "—",
                    group.facts?.weights ?? "—", group.facts.map { ReportNumber.count(Double($0.parameters)) } ?? "—"]
        }
        var blocks: [ReportBlock] = [
            .heading("Model", level: 2),
            .table(ReportTable(headers: ["conditions", "model file", "name", "weights: stored, as trained", "parameters"],
                               rows: rows, numericColumns: [4])),
        ]
        var notes: [String] = []
        if groups.contains(where: { $0.facts?.weights.contains("dequantised") ?? false }) {
            notes.append("Quantised weights are dequantised to Float32 before training: every method starts from the "
                + "rounded weights, not the original model's, and QLoRA rounds its projections a second time (NF4).")
        }
        if groups.contains(where: { $0.facts == nil }) {
            notes.append("\"—\": no finished trial has described that model yet (the description comes with a trial's "
                + "final summary; workers and databases from before model descriptions have none).")
        }
        if !notes.isEmpty { blocks.append(.paragraph(notes.joined(separator: " "))) }
        return blocks
    }

    /// How the trial's worker holds the model's projections: by the rule the
    /// worker loads it by, from its method and its precision (f32 when its
    /// configuration could not be read or names none).
    static func storage(of trial: ReportTrial) -> LinearStorage {
        guard let method = MethodKind(rawValue: trial.method) else { return .float32 }
        return LinearStorage.training(method, precision: trial.settings?.productPrecision ?? .f32)
    }
}
