// LlamaModel: a Llama model's configuration and its parameters in one arena,
// filled from any TensorSource (GGUF or Hugging Face safetensors) or at random.
import Foundation
import Trial

/// A Llama model in memory: frozen base weights, read-only and shared by every
/// trial a process runs (full fine-tuning trains a copy).
public final class LlamaModel: @unchecked Sendable {
    public let config: LlamaConfiguration
    public let storage: LinearStorage
    public let layout: ParameterLayout
    public let parameters: FloatArena
    public let weights: LlamaWeights
    /// The projections of each layer when `storage == .nf4`.
    public let quantized: [[ProjectionKind: NF4Tensor]]?
    /// The projections of each layer when `storage == .bf16`.
    public let bf16Projections: [[ProjectionKind: BFloat16Matrix]]?
    /// The output head in bf16, made by the first network in bf16 precision
    /// that asks and shared by every trial on this model; rounded again
    /// after a write through `tensor(_:)`.
    private let bf16Head = LockedValue<BFloat16Matrix?>(nil)
    /// `fingerprint`, once made; nil again after a write through `tensor(_:)`.
    let fingerprintCache = LockedValue<String?>(nil)
    /// oneDNN-packed copies of each layer's Float32 projections, filled by
    /// the first product of each direction and shared by every adapter trial
    /// on this model, which release the
    /// projections' plain rows once both exist (`ReleasablePlainRows`); nil
    /// when the model does not pack (see `packsFrozenBases`).
    private let frozenPacks: [[ProjectionKind: PackedWeight]]?
    /// Those of `frozenPacks` that may release their rows, by the projection's offset in the arena.
    private let releasablePacks: [Int: PackedWeight]
    /// oneDNN-packed copies of the Float32 head (`packsFrozenHead`), for
    /// adapter networks in f32 whatever their projections' storage (QLoRA's too).
    let frozenHeadPack: PackedWeight?

    /// A model with all parameters zero; `randomize` fills it.
    public init(config: LlamaConfiguration) {
        self.config = config
        storage = .float32
        layout = ParameterLayout(config: config)
        parameters = FloatArena(capacity: layout.totalCount)
        weights = LlamaWeights(layout: layout, config: config, base: parameters.base)
        quantized = nil
        bf16Projections = nil
        frozenPacks = Self.makeFrozenPacks(config, storage: storage, weights: weights, arena: parameters)
        releasablePacks = Self.releasable(frozenPacks, layout: layout)
        frozenHeadPack = Self.packsFrozenHead(config) ? PackedWeight() : nil
    }

    /// Loads every tensor from `source`, whose names and shapes are all
    /// checked first; with `.nf4` or `.bf16` the projections are converted
    /// one at a time as they are read.
    public init(config: LlamaConfiguration, source: TensorSource, storage: LinearStorage = .float32, context: ComputeContext = ComputeContext(threads: 1)) throws {
        try ParameterLayout.checkTensors(config, in: source)
        self.config = config
        self.storage = storage
        layout = ParameterLayout(config: config, linears: storage == .float32)
        parameters = FloatArena(capacity: layout.totalCount)
        weights = LlamaWeights(layout: layout, config: config, base: parameters.base)
        frozenPacks = Self.makeFrozenPacks(config, storage: storage, weights: weights, arena: parameters)
        releasablePacks = Self.releasable(frozenPacks, layout: layout)
        frozenHeadPack = Self.packsFrozenHead(config) ? PackedWeight() : nil
        for entry in layout.entries {
            try source.read(entry.name, into: UnsafeMutableBufferPointer(start: parameters.base + entry.offset, count: entry.count))
        }
        guard storage != .float32 else { quantized = nil; bf16Projections = nil; return }
        let largest = ProjectionKind.allCases.map { ParameterLayout.shape(config, $0).reduce(1, *) }.max() ?? 0
        let staging = FloatArena(capacity: largest)
        var nf4Layers: [[ProjectionKind: NF4Tensor]] = [], bf16Layers: [[ProjectionKind: BFloat16Matrix]] = []
        let packsBF16 = storage == .bf16 && Self.packsFrozenBFloat16(config)
        for l in 0..<config.layerCount {
            var nf4Layer: [ProjectionKind: NF4Tensor] = [:], bf16Layer: [ProjectionKind: BFloat16Matrix] = [:]
            for kind in ProjectionKind.allCases {
                let name = ParameterLayout.name(layer: l, kind), shape = ParameterLayout.shape(config, kind)
                let buffer = UnsafeMutableBufferPointer(start: staging.base, count: shape[0] * shape[1])
                try source.read(name, into: buffer)
                if storage == .bf16 {
                    bf16Layer[kind] = BFloat16Matrix(staging.base, rows: shape[0], columns: shape[1], context: context, packs: packsBF16)
                    continue
                }
                do {
                    nf4Layer[kind] = try NF4Tensor(quantizing: UnsafeBufferPointer(buffer), rows: shape[0], columns: shape[1], context: context)
                } catch {
                    throw LoadError.malformed(file: source.origin, reason: "cannot quantise \(name) to NF4: \(error)")
                }
            }
            nf4Layers.append(nf4Layer)
            bf16Layers.append(bf16Layer)
        }
        quantized = storage == .nf4 ? nf4Layers : nil
        bf16Projections = storage == .bf16 ? bf16Layers : nil
    }

    /// Whether adapter networks in f32 on oneDNN multiply by packed copies of
    /// this model's Float32 projections, one per direction, for products
    /// that no longer re-block the weight in every call (LoRA r=8 and IA³
    /// at batch 1 and 8: 9–12% faster an epoch at SmolLM2; 19% at
    /// Llama-3.2-1B; docs/benchmarks.md, "Issue 13, sixth stop"). Once both
    /// copies of a projection exist its plain rows are released
    /// (`ReleasablePlainRows`), so the copies cost one projection more, not
    /// two: the projections' net cost (`packedProjectionNetBytes`, 0.42 GB at
    /// SmolLM2, 3.9 GB at Llama-3.2-1B; twice that where no rows are
    /// released) against `packedProjectionsLimit`.
    /// Where oneDNN's matmul is its AVX2 one the backward's layout is the
    /// projection as stored, which is then read in place: only the
    /// forward's copy is made and nothing is released ("eighteenth stop");
    /// the limit counts both copies on every CPU, so that the rule depends on
    /// the model alone, never on the host: packed and plain products round
    /// differently (within 1e-6). `FACTSWEEP_PACK_F32_BASES=on` or `off`
    /// decides it, and the head's (`packsFrozenHead`), for every model.
    public static func packsFrozenBases(_ config: LlamaConfiguration) -> Bool {
        environmentDecides("FACTSWEEP_PACK_F32_BASES") { packedProjectionNetBytes(config) <= packedProjectionsLimit }
    }

    /// Whether those networks multiply by packed copies of the Float32 head
    /// too: at 19–29 answer rows its products ran at 55% of the f32 peak
    /// over its plain rows, and a packed head took ~30% off them (a harness
    /// against oneDNN; "twenty-second stop"). The head is the tied embedding
    /// table, which the forward gathers from, so its plain rows stay: both
    /// copies are a net cost (`packedHeadBytes`: 0.23 GB at SmolLM2, 2.1 GB at
    /// Llama-3.2-1B, where the head is under a tenth of a step's products),
    /// against `packedHeadLimit`.
    public static func packsFrozenHead(_ config: LlamaConfiguration) -> Bool {
        environmentDecides("FACTSWEEP_PACK_F32_BASES") { packedHeadBytes(config) <= packedHeadLimit }
    }

    /// `on` or `off` in the environment variable `key`, for every model;
    /// otherwise `rule`, on the model alone.
    private static func environmentDecides(_ key: String, otherwise rule: () -> Bool) -> Bool {
        switch ProcessInfo.processInfo.environment[key]?.lowercased() {
        case "on": true
        case "off": false
        default: rule()
        }
    }

    /// Memory the packed f32 copies of a model's projections add, two
    /// layouts each, net of the plain rows they release: one Float32 copy,
    /// or both where this process releases none (`FACTSWEEP_RELEASE_F32_ROWS=off`,
    /// or `FACTSWEEP_HUGE_PAGES=off`, whose arenas are not mapped here).
    static func packedProjectionNetBytes(_ config: LlamaConfiguration) -> Int {
        (releasesPlainRows ? 1 : 2) * projectionBytes(config)
    }

    /// Whether this process's f32 models release their projections' plain
    /// rows beside both packed copies (its environment's say, and arenas
    /// mapped by `LargeBuffer`).
    static var releasesPlainRows: Bool { ReleasablePlainRows.releases && LargeBuffer.usesHugePages }

    /// Bytes of the packed f32 copies of a model's head, two layouts.
    static func packedHeadBytes(_ config: LlamaConfiguration) -> Int { 2 * 4 * config.vocabularySize * config.hiddenSize }

    /// The most memory packed f32 projections add by default: 4 GiB, so
    /// that a Llama-3.2-1B f32 adapter worker (8.6 GiB at its peak in the
    /// bench, 9.7 GiB with evaluations; docs/benchmarks.md) still
    /// shares a 24 GiB host with another; a 3B model's (11 GB) are not made.
    public static let packedProjectionsLimit = 4 << 30

    /// The most memory a packed f32 head takes by default: 1 GiB.
    public static let packedHeadLimit = 1 << 30

    /// Whether the frozen bf16 matrices of bf16 trials (an adapter method's
    /// projections stored in bf16, and the bf16 head every bf16 trial reads)
    /// are multiplied by packed copies, one per direction, for products that
    /// no longer re-block the weight in every call. On a Zen 4 EPYC, LoRA r=8
    /// at batch 1 went from 0.80–1.13 to 0.59–0.79 s/epoch at SmolLM2 and from
    /// 6.0–6.4 to 4.6 s at Llama-3.2-1B (docs/benchmarks.md, "Issue 13,
    /// twentieth stop"). Once both copies exist the plain bits are released
    /// (`BFloat16Matrix.releasePlainBitsIfPacked`), so the copies cost one
    /// matrix more at the peak, not two: peak RSS 520 MiB unpacked, 822
    /// packed (1,033 before the release) at SmolLM2; 3,684 MiB unpacked and
    /// 6,533 packed (8,405 before) at Llama-3.2-1B, beside PyTorch autocast's
    /// 8,599 ("twenty-fourth stop"). By default when the copies take at most
    /// `packedBFloat16Limit`, a rule on the model alone, as packed and plain
    /// products may round differently (within 1e-6);
    /// `FACTSWEEP_PACK_BF16_BASES=on` or `off` decides it for every model
    /// (`off`: bf16 adapters at half the f32 base's memory, slower).
    public static func packsFrozenBFloat16(_ config: LlamaConfiguration) -> Bool {
        environmentDecides("FACTSWEEP_PACK_BF16_BASES") { packedBFloat16Bytes(config) <= packedBFloat16Limit }
    }

    /// The most memory packed bf16 copies take by default: 6 GiB, so that two
    /// bf16 adapter workers with them still share a 24 GiB host at
    /// Llama-3.2-1B (copies 4.9 GB, 6.4 GiB a worker at its peak); a 3B
    /// model's (12.8 GB) are not made.
    public static let packedBFloat16Limit = 6 << 30

    /// Bytes of the packed bf16 copies of a model's projections and head, two layouts each.
    static func packedBFloat16Bytes(_ config: LlamaConfiguration) -> Int {
        2 * (projectionBytes(config) / 2 + 2 * config.vocabularySize * config.hiddenSize)
    }

    /// Whether full fine-tuning in bf16 keeps the roundings of its trained
    /// weights in oneDNN's blocked layouts, one per direction, where the
    /// products read that layout (`BFloat16Matrix.init(rounding:blocked:)`):
    /// one more bf16 copy of the trained weights than one plain rounding
    /// (+269 MB at SmolLM2), for products that no longer re-block the
    /// weight in every call (SmolLM2: epochs 8% shorter at batch 1, 11% at
    /// batch 8; docs/benchmarks.md, "Issue 13, thirty-fourth stop"). By
    /// default when that copy takes at most `blockedRoundingsLimit`:
    /// SmolLM2-class models do. Llama-3.2-1B's would take 2,357 MiB more on
    /// a run that peaks at 21,524 MiB with the update after the backward,
    /// 23,881 MiB on a host with 24,105 MiB in all, for no gain measured
    /// there (its products already run at 97% of their rate alone), so
    /// they do not. A rule on the model alone, as the blocked and
    /// plain products may round differently (within 1e-6);
    /// `FACTSWEEP_TRAINED_BF16_BLOCKED=on` or `off` decides it for every model.
    public static func blocksTrainedRoundings(_ config: LlamaConfiguration) -> Bool {
        environmentDecides("FACTSWEEP_TRAINED_BF16_BLOCKED") { trainedBFloat16Bytes(config) <= blockedRoundingsLimit }
    }

    /// The most memory the extra bf16 copy of blocked trained roundings takes by default: 1 GiB.
    public static let blockedRoundingsLimit = 1 << 30

    /// Bytes of one bf16 rounding of the matrices full fine-tuning's
    /// products read: the projections and the head (an untied embedding is
    /// only gathered from, in Float32).
    static func trainedBFloat16Bytes(_ config: LlamaConfiguration) -> Int {
        projectionBytes(config) / 2 + 2 * config.vocabularySize * config.hiddenSize
    }

    /// Bytes of a model's projections in Float32.
    static func projectionBytes(_ config: LlamaConfiguration) -> Int {
        4 * config.layerCount * ProjectionKind.allCases.reduce(0) { $0 + ParameterLayout.shape(config, $1).reduce(1, *) }
    }

    /// Each Float32 projection's packed copies, whose plain rows in the
    /// arena they may release when the arena is mapped (`LargeBuffer`:
    /// released pages are then unmapped with it, whatever their protection).
    private static func makeFrozenPacks(_ config: LlamaConfiguration, storage: LinearStorage, weights: LlamaWeights,
                                        arena: FloatArena) -> [[ProjectionKind: PackedWeight]]? {
        guard storage == .float32, packsFrozenBases(config) else { return nil }
        let releasable = LargeBuffer.isMapped(arena.byteCount)
        return weights.layers.map { layer in
            Dictionary(uniqueKeysWithValues: ProjectionKind.allCases.map { kind in
                guard releasable, let rows = layer.projections[kind] else { return (kind, PackedWeight()) }
                return (kind, PackedWeight(releasing: rows.base, count: ParameterLayout.shape(config, kind).reduce(1, *)))
            })
        }
    }

    /// Runs `body` with `entry`'s Floats in the arena readable and holding
    /// the model's values: a projection whose plain rows its packed copies
    /// released is written back from them first, and released again
    /// afterwards (`ReleasablePlainRows`). One tensor at a time, so that a
    /// reader of the whole base (a copy of it, an export, the fingerprint)
    /// brings back at most one projection's rows at once.
    /// `body` gets the tensor's first Float (`entry.count` of them).
    public func withPlainRows<Result>(of entry: ParameterEntry, _ body: (UnsafePointer<Float>) throws -> Result) rethrows -> Result {
        let rows = UnsafePointer(parameters.base + entry.offset)
        guard let packed = releasablePacks[entry.offset] else { return try body(rows) }
        return try packed.withPlainRows(oneOff: true) { try body(rows) }
    }

    /// Frees the packed copies of the Float32 projections and head, writing
    /// released plain rows back first, and returns the bytes freed: what a
    /// full fine-tuning trial, which multiplies by its own copy of the base,
    /// would otherwise carry beside it (3.9 GB at Llama-3.2-1B). The next
    /// adapter trial's first products make them again, and release the rows
    /// again. Only while nothing else runs on this model: a product reads
    /// its copy outside the copy's lock, so this may not race one
    /// (`TrialRunner` calls it for a full fine-tuning trial as `ModelCache`
    /// hands it the model, under the cache's lock, while no other trial
    /// holds it).
    public func dropFloat32Copies() -> Int {
        let freed = (frozenPacks?.flatMap(\.values) ?? []).reduce(0) { sum, packed in
            sum + packed.withPlainRows(oneOff: true) { packed.discardCopies() }
        }
        return freed + (frozenHeadPack?.discardCopies() ?? 0)
    }

    /// `frozenPacks`' copies that may release their projection's rows, by
    /// the projection's offset in `layout`.
    private static func releasable(_ packs: [[ProjectionKind: PackedWeight]]?, layout: ParameterLayout) -> [Int: PackedWeight] {
        var byOffset: [Int: PackedWeight] = [:]
        for (l, layer) in (packs ?? []).enumerated() {
            for (kind, packed) in layer where packed.plainRows != nil {
                if let e = layout[ParameterLayout.name(layer: l, kind)] { byOffset[e.offset] = packed }
            }
        }
        return byOffset
    }

    /// The packed copies of layer `layer`'s `kind` projection, if the model keeps them.
    func frozenPack(layer: Int, _ kind: ProjectionKind) -> PackedWeight? { frozenPacks?[layer][kind] }

    /// The head (V, C) in bf16, converted from the arena on first use.
    func bf16HeadCopy(context: ComputeContext) -> BFloat16Matrix {
        bf16Head.withLock { head in
            if let head { return head }
            let made = BFloat16Matrix(weights.lmHead.base, rows: config.vocabularySize, columns: config.hiddenSize, context: context,
                                      packs: Self.packsFrozenBFloat16(config), rereadsSource: true)
            head = made
            return made
        }
    }

    /// Bytes of the frozen base weights in their method's storage: the arena
    /// plus quantised or bf16 projections, and a bf16 head made for bf16
    /// trials, each bf16 matrix at 2 bytes a value whether its plain rows
    /// are held or released (its values then live in its packed copies).
    /// The copies oneDNN's products keep for speed are not counted (they are
    /// in `packedCopyBytes`, and in the peak RSS), so that the study compares
    /// what each method stores.
    public var baseWeightBytes: Int {
        parameters.byteCount + (quantized?.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.byteCount } } ?? 0)
            + (bf16Projections?.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.byteCount } } ?? 0)
            + (bf16Head.withLock { $0.map(\.byteCount) } ?? 0)
    }

    /// Bytes of the packed copies oneDNN's products have made of this model's
    /// frozen matrices (f32 projections, bf16 projections, the bf16 head).
    public var packedCopyBytes: Int {
        (bf16Projections?.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.packed.byteCount } } ?? 0)
            + (bf16Head.withLock { $0.map(\.packed.byteCount) } ?? 0)
            + (frozenPacks?.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.byteCount } } ?? 0)
            + (frozenHeadPack?.byteCount ?? 0)
    }

    /// Bytes the model holds in memory now: its base weights and packed
    /// copies, less the plain rows and bits its copies released (Llama-3.2-1B
    /// in f32 after a LoRA trial: 4.9 GB + 7.8 GB − 3.9 GB). What a
    /// worker's model cache weighs against its budget.
    public var heldBytes: Int {
        let releasedRows = releasablePacks.values.reduce(0) { $0 + (($1.plainRows.map { $0.isReleased ? 4 * $0.count : 0 }) ?? 0) }
        func released(_ matrix: BFloat16Matrix) -> Int { matrix.holdsPlainBits ? 0 : matrix.byteCount }
        let releasedBits = (bf16Projections?.reduce(0) { $0 + $1.values.reduce(0) { $0 + released($1) } } ?? 0)
            + (bf16Head.withLock { $0.map(released) } ?? 0)
        return baseWeightBytes + packedCopyBytes - releasedRows - releasedBits
    }

    /// The parameter tensor named `name` (Hugging Face naming). The buffer is
    /// writable, so the copies of the base are marked stale: the next product
    /// of each packs (and the bf16 head's rounds) the possibly changed weights
    /// again, in every network made before or after. Write before that next
    /// product: one that runs in between copies the old values again.
    public func tensor(_ name: String) -> UnsafeMutableBufferPointer<Float> {
        guard let e = layout[name] else { preconditionFailure("no tensor \(name)") }
        // Released rows are written back before the copies that hold their values go stale, and
        // inside the lease, so that no release comes between.
        for packed in frozenPacks?.flatMap(\.values) ?? [] {
            packed.withPlainRows(oneOff: true) { packed.invalidate() }
        }
        frozenHeadPack?.invalidate()
        bf16Head.withLock { $0?.invalidate() }
        fingerprintCache.withLock { $0 = nil }
        return UnsafeMutableBufferPointer(start: parameters.base + e.offset, count: e.count)
    }

    /// Normal(0, std) matrices and unit norms, as transformers initialises a
    /// fresh model: for benchmarks at scales whose weights cannot be fetched.
    public func randomize(seed: UInt64, std: Float = 0.02) {
        var rng = SeededGenerator(seed: seed)
        for e in layout.entries {
            let t = tensor(e.name)
            if e.shape.count == 1 {
                t.update(repeating: 1)
            } else {
                for i in t.indices { t[i] = std * rng.nextNormal() }
            }
        }
    }
}
