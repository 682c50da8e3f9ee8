// Per-op checks: every backward against central finite differences of its
// forward (L = Σ out ⊙ r for a fixed random r), and the sgemm path against a
// naive loop.
import Foundation
import Testing
@testable import Core
import TestSupport

/// Buffers for one op check, with deterministic contents.
final class Buffers {
    private var arenas: [FloatArena] = []
    private var rng = SeededGenerator(seed: 11)

    func random(_ count: Int, scale: Float = 1, offset: Float = 0) -> FloatPointer {
        let a = FloatArena(capacity: count)
        arenas.append(a)
        for i in 0..<count { a.base[i] = offset + scale * rng.nextNormal() }
        return FloatPointer(a.base)
    }

    func zeros(_ count: Int) -> FloatPointer { random(count, scale: 0) }
}

/// Σ out ⊙ r.
func weightedSum(_ out: FloatPointer, _ r: FloatPointer, _ count: Int) -> Double {
    var s: Double = 0
    for i in 0..<count { s += Double(out[i]) * Double(r[i]) }
    return s
}

/// Compares `analytic` (count) with finite differences of `loss` with respect
/// to `input` at every index (or a sample of `samples` when given).
func expectGradient(
    _ label: String, input: FloatPointer, analytic: FloatPointer, count: Int, h: Float = 1e-2,
    tolerance: Float = 1e-2, loss: () -> Double
) {
    var worst: Float = 0
    for i in 0..<count {
        let saved = input[i]
        input[i] = saved + h
        let up = loss()
        input[i] = saved - h
        let down = loss()
        input[i] = saved
        let numeric = Float((up - down) / Double(2 * h))
        let error = abs(numeric - analytic[i]) / max(1e-2, abs(numeric) + abs(analytic[i]))
        worst = max(worst, error)
        if error >= tolerance {
            Issue.record("\(label)[\(i)]: analytic \(analytic[i]) numeric \(numeric)")
            return
        }
    }
    print("gradcheck \(label): worst relative error \(worst)")
}

@Suite struct OpGradientCheckTests {
    let ctx = ComputeContext(threads: 2)

    @Test func linearMatchesNaiveLoopAndFiniteDifferences() {
        let buf = Buffers()
        let n = 5, inDim = 7, outDim = 6
        let x = buf.random(n * inDim), w = buf.random(outDim * inDim), y = buf.zeros(n * outDim), r = buf.random(n * outDim)
        linearForward(y.base, x.base, w.base, n: n, inDim: inDim, outDim: outDim)
        for i in 0..<n {
            for o in 0..<outDim {
                var s: Float = 0
                for k in 0..<inDim { s += x[i * inDim + k] * w[o * inDim + k] }
                #expect(abs(s - y[i * outDim + o]) < 1e-5)
            }
        }
        let dx = buf.zeros(n * inDim), dw = buf.zeros(outDim * inDim)
        linearBackward(dinp: dx.base, dweight: dw.base, dout: r.base, inp: x.base, weight: w.base, n: n, inDim: inDim, outDim: outDim)
        let loss = { () -> Double in
            linearForward(y.base, x.base, w.base, n: n, inDim: inDim, outDim: outDim)
            return weightedSum(y, r, n * outDim)
        }
        expectGradient("linear dx", input: x, analytic: dx, count: n * inDim, loss: loss)
        expectGradient("linear dw", input: w, analytic: dw, count: outDim * inDim, loss: loss)
    }

    /// Widths below the row kernel's 16 lanes, a multiple of them, and lanes plus a tail.
    @Test(arguments: [9, 32, 41])
    func rmsNorm(c: Int) {
        let buf = Buffers()
        let n = 4
        let x = buf.random(n * c), w = buf.random(c, scale: 0.2, offset: 1), y = buf.zeros(n * c), rstd = buf.zeros(n)
        let r = buf.random(n * c), dx = buf.zeros(n * c), dw = buf.zeros(c), scratch = buf.zeros(ctx.threads * c)
        rmsNormForward(y, rstd: rstd, x, weight: w, n: n, c: c, eps: 1e-5, context: ctx)
        rmsNormBackward(dinp: dx, dweight: dw, dout: r, inp: x, weight: w, rstd: rstd, n: n, c: c, scratch: scratch, context: ctx)
        let loss = { () -> Double in
            rmsNormForward(y, rstd: rstd, x, weight: w, n: n, c: c, eps: 1e-5, context: ctx)
            return weightedSum(y, r, n * c)
        }
        expectGradient("rmsnorm dx \(c)", input: x, analytic: dx, count: n * c, loss: loss)
        expectGradient("rmsnorm dw \(c)", input: w, analytic: dw, count: c, loss: loss)
        // Each row against the formula in Double.
        _ = loss()
        for row in 0..<n {
            let xs = (0..<c).map { Double(x.base[row * c + $0]) }
            let rd = 1 / (xs.reduce(0) { $0 + $1 * $1 } / Double(c) + 1e-5).squareRoot()
            #expect(abs(Double(rstd[row]) - rd) <= 1e-5 * rd)
            let worst = (0..<c).map { abs(Double(y.base[row * c + $0]) - Double(w.base[$0]) * xs[$0] * rd) }.max() ?? 0
            #expect(worst < 1e-5, "row \(row) of width \(c): \(worst) from the formula")
        }
    }

    @Test func swiglu() {
        let buf = Buffers()
        let count = 40
        let g = buf.random(count, scale: 2), u = buf.random(count), y = buf.zeros(count), r = buf.random(count)
        let dg = buf.zeros(count), du = buf.zeros(count)
        swigluBackward(dgate: dg, dup: du, dout: r, gate: g, up: u, count: count, context: ctx)
        let loss = { () -> Double in
            swigluForward(y, gate: g, up: u, count: count, context: ctx)
            return weightedSum(y, r, count)
        }
        expectGradient("swiglu dgate", input: g, analytic: dg, count: count, loss: loss)
        expectGradient("swiglu dup", input: u, analytic: du, count: count, loss: loss)
    }

    @Test(arguments: [false, true])
    func rope(llama3: Bool) {
        let buf = Buffers()
        let seq = 5, rows = 2 * seq, heads = 3, hd = 8, stride = heads * hd + 4
        let scaling: RopeScaling = llama3 ? .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 4) : .none
        let table = RopeTable(headDimension: hd, positions: seq, theta: 10000, scaling: scaling)
        let x = buf.random(rows * stride), r = buf.random(rows * stride), y = buf.zeros(rows * stride)
        let dx = buf.zeros(rows * stride)
        dx.base.update(from: r.base, count: rows * stride)
        ropeBackward(dx, table: table, rows: rows, seqLen: seq, heads: heads, rowStride: stride, context: ctx)
        // Columns past heads·hd are not rotated: their gradient passes through.
        let loss = { () -> Double in
            y.base.update(from: x.base, count: rows * stride)
            ropeForward(y, table: table, rows: rows, seqLen: seq, heads: heads, rowStride: stride, context: ctx)
            return weightedSum(y, r, rows * stride)
        }
        expectGradient("rope(llama3: \(llama3))", input: x, analytic: dx, count: rows * stride, loss: loss)
    }

    /// The rotation at explicit positions (sequences laid end to end): each
    /// row turns by its own position, and the backward turns it back.
    @Test func ropeAtPositions() {
        let buf = Buffers()
        let positions: [Int32] = [0, 1, 2, 3, 0, 1, 0, 1, 2, 3, 4]
        let rows = positions.count, heads = 2, hd = 8, stride = heads * hd
        let table = RopeTable(headDimension: hd, positions: 5, theta: 10000, scaling: .none)
        let x = buf.random(rows * stride), r = buf.random(rows * stride), y = buf.zeros(rows * stride)
        let dx = buf.zeros(rows * stride)
        dx.base.update(from: r.base, count: rows * stride)
        positions.withUnsafeBufferPointer { pos in
            ropeBackward(dx, table: table, positions: pos.baseAddress!, rows: rows, heads: heads, rowStride: stride, context: ctx)
        }
        let loss = { () -> Double in
            y.base.update(from: x.base, count: rows * stride)
            positions.withUnsafeBufferPointer { pos in
                ropeForward(y, table: table, positions: pos.baseAddress!, rows: rows, heads: heads, rowStride: stride, context: ctx)
            }
            return weightedSum(y, r, rows * stride)
        }
        expectGradient("rope at positions", input: x, analytic: dx, count: rows * stride, loss: loss)
        // Row 4 sits at position 0: not rotated at all.
        _ = loss()
        #expect((0..<stride).allSatisfy { y.base[4 * stride + $0] == x.base[4 * stride + $0] })
    }

    /// Attention's operands at random over `s`, its forward and backward
    /// (dout = r; the gradients' buffers start with garbage, which backward
    /// must overwrite), each gradient checked against finite differences;
    /// leaves `out` as the unperturbed forward's.
    func checkedAttention(_ s: AttentionShape, _ buf: Buffers, label: String) -> AttentionCheck {
        let n = s.lengths.reduce(0, +), qw = s.heads * s.headDim, kw = s.kvHeads * s.headDim
        let a = AttentionCheck(q: buf.random(n * qw), k: buf.random(n * kw), v: buf.random(n * kw), r: buf.random(n * qw),
                               out: buf.zeros(n * qw), probs: buf.zeros(s.batch * s.heads * s.seqLen * s.seqLen),
                               dq: buf.random(n * qw), dk: buf.random(n * kw), dv: buf.random(n * kw))  // overwritten
        let scratch = buf.zeros(ctx.threads * s.seqLen * s.seqLen), prefixScratch = buf.random(max(1, s.prefixScratchCount))
        attentionForward(a.out, probs: a.probs, q: a.q, k: a.k, v: a.v, shape: s, context: ctx)
        attentionBackward(dq: a.dq, dk: a.dk, dv: a.dv, dout: a.r, probs: a.probs, q: a.q, k: a.k, v: a.v, shape: s, scratch: scratch,
                          prefixScratch: prefixScratch, context: ctx)
        let loss = { () -> Double in
            attentionForward(a.out, probs: a.probs, q: a.q, k: a.k, v: a.v, shape: s, context: ctx)
            return weightedSum(a.out, a.r, n * qw)
        }
        expectGradient("\(label) dq", input: a.q, analytic: a.dq, count: n * qw, loss: loss)
        expectGradient("\(label) dk", input: a.k, analytic: a.dk, count: n * kw, loss: loss)
        expectGradient("\(label) dv", input: a.v, analytic: a.dv, count: n * kw, loss: loss)
        _ = loss()  // the checks left a perturbed output
        return a
    }

    struct AttentionCheck {
        let q, k, v, r, out, probs, dq, dk, dv: FloatPointer
    }

    /// Two sequences of 5 rows (a padded batch), and three of 4, 19 and 1 rows
    /// laid end to end: each sequence attends only within itself.
    @Test(arguments: [[5, 5], [4, 19, 1]])
    func groupedQueryAttention(lengths: [Int]) {
        let buf = Buffers()
        let s = AttentionShape(lengths: lengths, heads: 4, kvHeads: 2, headDim: 3)
        let qw = s.heads * s.headDim, kw = s.kvHeads * s.headDim
        let a = checkedAttention(s, buf, label: "attention \(lengths)")
        let (q, k, v, out, probs) = (a.q, a.k, a.v, a.out, a.probs)
        // Causality: the first position of each sequence attends only to itself.
        for b in 0..<s.batch {
            for h in 0..<s.heads {
                let row = probs.base + (b * s.heads + h) * s.seqLen * s.seqLen, L = lengths[b]
                #expect(row[0] == 1 && (1..<L).allSatisfy { row[$0] == 0 })
            }
        }
        // Each sequence's output is the one it has alone: nothing leaks across.
        for b in 0..<s.batch {
            let L = lengths[b], first = s.starts[b]
            let alone = AttentionShape(lengths: [L], heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim)
            let outAlone = buf.zeros(L * qw), probsAlone = buf.zeros(s.heads * L * L)
            let qAlone = buf.zeros(L * qw), kAlone = buf.zeros(L * kw), vAlone = buf.zeros(L * kw)
            qAlone.base.update(from: q.base + first * qw, count: L * qw)
            kAlone.base.update(from: k.base + first * kw, count: L * kw)
            vAlone.base.update(from: v.base + first * kw, count: L * kw)
            attentionForward(outAlone, probs: probsAlone, q: qAlone, k: kAlone, v: vAlone, shape: alone, context: ctx)
            let worst = (0..<(L * qw)).map { abs(outAlone.base[$0] - out.base[first * qw + $0]) }.max() ?? 0
            #expect(worst < 1e-6, "sequence \(b) of \(lengths): \(worst) from its output alone")
        }
    }

    /// A prefix of 4 rows that sequence 0 (7 rows) lays and the later ones
    /// (3, 1 and 0 rows of their own) attend to first: every gradient against
    /// finite differences, and each later sequence's output and gradients
    /// equal those of the prefix and its rows laid as one sequence, the
    /// prefix's key and value gradients the sum over the sequences.
    @Test func attentionWithASharedPrefix() {
        let buf = Buffers()
        let lengths = [7, 3, 1, 0], P = 4
        let s = AttentionShape(lengths: lengths, prefix: P, heads: 4, kvHeads: 2, headDim: 3)
        #expect(s.seqLen == 7 && s.prefixScratchCount == 2 * 3 * P * 6)
        let qw = s.heads * s.headDim, kw = s.kvHeads * s.headDim
        let a = checkedAttention(s, buf, label: "prefix attention")
        let (q, k, v, r, out, dq, dk, dv) = (a.q, a.k, a.v, a.r, a.out, a.dq, a.dk, a.dv)

        // Sequence 0 alone, then each later sequence behind a copy of the prefix.
        var prefixDK = [Float](repeating: 0, count: P * kw), prefixDV = prefixDK
        for b in 0..<s.batch where lengths[b] > 0 {
            let own = lengths[b], first = s.starts[b], prefix = b == 0 ? 0 : P, L = prefix + own
            let alone = AttentionShape(lengths: [L], heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim)
            let qA = buf.zeros(L * qw), kA = buf.zeros(L * kw), vA = buf.zeros(L * kw), rA = buf.zeros(L * qw)
            // The prefix's rows copied but for their output's weights: what they send back is sequence 0's.
            for (dst, src, w, withPrefix) in [(qA, q, qw, true), (kA, k, kw, true), (vA, v, kw, true), (rA, r, qw, false)] {
                if withPrefix { dst.base.update(from: src.base, count: prefix * w) }
                (dst.base + prefix * w).update(from: src.base + first * w, count: own * w)
            }
            let outA = buf.zeros(L * qw), probsA = buf.zeros(s.heads * L * L)
            let dqA = buf.zeros(L * qw), dkA = buf.zeros(L * kw), dvA = buf.zeros(L * kw), scratchA = buf.zeros(ctx.threads * L * L)
            attentionForward(outA, probs: probsA, q: qA, k: kA, v: vA, shape: alone, context: ctx)
            attentionBackward(dq: dqA, dk: dkA, dv: dvA, dout: rA, probs: probsA, q: qA, k: kA, v: vA, shape: alone, scratch: scratchA, context: ctx)
            func worst(_ a: FloatPointer, _ aStart: Int, _ b: FloatPointer, _ bStart: Int, _ count: Int) -> Float {
                (0..<count).map { abs(a.base[aStart + $0] - b.base[bStart + $0]) }.max() ?? 0
            }
            #expect(worst(outA, prefix * qw, out, first * qw, own * qw) < 1e-6, "sequence \(b): output")
            #expect(worst(dqA, prefix * qw, dq, first * qw, own * qw) < 1e-5, "sequence \(b): dq")
            let ownFrom = b == 0 ? P : 0  // sequence 0's prefix rows are checked against the sum below
            #expect(worst(dkA, (prefix + ownFrom) * kw, dk, (first + ownFrom) * kw, (own - ownFrom) * kw) < 1e-5, "sequence \(b): dk")
            #expect(worst(dvA, (prefix + ownFrom) * kw, dv, (first + ownFrom) * kw, (own - ownFrom) * kw) < 1e-5, "sequence \(b): dv")
            for i in 0..<(P * kw) { prefixDK[i] += dkA.base[i]; prefixDV[i] += dvA.base[i] }
        }
        let dkWorst = (0..<(P * kw)).map { abs(prefixDK[$0] - dk.base[$0]) }.max() ?? 0
        let dvWorst = (0..<(P * kw)).map { abs(prefixDV[$0] - dv.base[$0]) }.max() ?? 0
        #expect(dkWorst < 1e-5 && dvWorst < 1e-5, "the prefix's dk, dv: \(dkWorst), \(dvWorst) from the sum over sequences")
    }

    /// Vocabularies shorter than the kernel's 16 lanes, a multiple of them,
    /// and lanes plus a tail.
    @Test(arguments: [11, 48, 75])
    func crossEntropy(vocab: Int) {
        let buf = Buffers()
        let rows = 3
        let logits = buf.random(rows * vocab, scale: 2), work = buf.zeros(rows * vocab), losses = buf.zeros(rows)
        let targets: [Int32] = [3, 0, Int32(vocab - 1)]
        logits.base[vocab + vocab / 2] = 9  // a maximum far from the target, mid-row
        let loss = { () -> Double in
            work.base.update(from: logits.base, count: rows * vocab)
            return Double(crossEntropyForwardBackward(logits: work, losses: losses, targets: targets, rows: rows, vocab: vocab, gradScale: 1.0 / 3, context: ctx))
        }
        let mean = loss()
        let analytic = buf.zeros(rows * vocab)
        analytic.base.update(from: work.base, count: rows * vocab)
        // Each row's loss against a Double log-sum-exp.
        for r in 0..<rows {
            let row = (0..<vocab).map { Double(logits.base[r * vocab + $0]) }, top = row.max()!
            let expected = top + log(row.reduce(0) { $0 + exp($1 - top) }) - row[Int(targets[r])]
            #expect(abs(Double(losses[r]) - expected) <= 1e-5 * max(1, expected), "row \(r): \(losses[r]), expected \(expected)")
        }
        #expect(abs(Double(mean) - (0..<rows).reduce(0) { $0 + Double(losses[$1]) } / Double(rows)) < 1e-6)
        expectGradient("cross-entropy \(vocab)", input: logits, analytic: analytic, count: rows * vocab, loss: loss)
    }

    @Test func embedding() {
        let buf = Buffers()
        let vocab = 6, c = 4, tokens: [Int32] = [1, 4, 1, 0]
        let table = buf.random(vocab * c), out = buf.zeros(tokens.count * c), r = buf.random(tokens.count * c)
        let dtable = buf.zeros(vocab * c)
        embeddingBackward(dtable: dtable, dout: r, tokens: tokens, n: tokens.count, c: c)
        let loss = { () -> Double in
            embeddingForward(out, tokens: tokens, table: table, n: tokens.count, c: c)
            return weightedSum(out, r, tokens.count * c)
        }
        expectGradient("embedding", input: table, analytic: dtable, count: vocab * c, loss: loss)
    }
}
