// EncoderOps: the forward-only ops of the BERT encoder that the Llama core does
// not have (LayerNorm with bias, exact GELU, bias rows, bidirectional attention
// over right-padded sentences, mean pooling). They have no backward and no
// gradient check because nothing trains through the embedder; matrix products
// still go through `gemm`/`linearForward` (Linear.swift).
import Foundation

/// out = inp · weightᵀ + bias.
/// - out: (N, outDim); inp: (N, inDim); weight: (outDim, inDim); bias: (outDim).
func linearWithBiasForward(
    _ out: FloatPointer, _ inp: FloatPointer, weight: FloatPointer, bias: FloatPointer,
    n: Int, inDim: Int, outDim: Int, context: ComputeContext
) {
    context.parallelFor(n, minimumPerThread: 64) { rows in
        for r in rows { (out.base + r * outDim).update(from: bias.base, count: outDim) }
    }
    linearForward(out.base, inp.base, weight.base, n: n, inDim: inDim, outDim: outDim, accumulate: true)
}

/// out = LayerNorm(inp + residual) = w ⊙ (x − mean) / sqrt(var + eps) + b per row,
/// with x = inp + residual (biased variance, as PyTorch). out may alias either input.
/// - out, inp, residual: (N, C); weight, bias: (C).
func addLayerNormForward(
    _ out: FloatPointer, _ inp: FloatPointer, residual: FloatPointer?, weight: FloatPointer, bias: FloatPointer,
    n: Int, c: Int, eps: Float, context: ComputeContext
) {
    context.parallelFor(n, minimumPerThread: 8) { rows in
        for row in rows {
            let x = inp.base + row * c, y = out.base + row * c
            if let residual {
                let r = residual.base + row * c
                for i in 0..<c { y[i] = x[i] + r[i] }
            } else if y != x {
                y.update(from: x, count: c)
            }
            // Two passes: the mean first, so that the variance does not cancel.
            var sum: Float = 0
            for i in 0..<c { sum += y[i] }
            let mean = sum / Float(c)
            var squares: Float = 0
            for i in 0..<c { squares += (y[i] - mean) * (y[i] - mean) }
            let rstd = 1 / (squares / Float(c) + eps).squareRoot()
            for i in 0..<c { y[i] = weight[i] * ((y[i] - mean) * rstd) + bias[i] }
        }
    }
}

/// x = gelu(x) in place, the exact form 0.5·x·(1 + erf(x/√2)) that BERT's "gelu" names.
/// - x: (count)
func geluForward(_ x: FloatPointer, count: Int, context: ComputeContext) {
    let invSqrt2 = Float(0.5).squareRoot()
    context.parallelFor(count, minimumPerThread: 4096) { range in
        for i in range { x[i] = 0.5 * x[i] * (1 + erff(x[i] * invSqrt2)) }
    }
}

/// Shapes of one bidirectional attention call over a right-padded batch.
struct EncoderAttentionShape: Sendable {
    var batch: Int, seqLen: Int, heads: Int, headDim: Int
    var width: Int { heads * headDim }
    var scale: Float { 1 / Float(headDim).squareRoot() }
}

/// Bidirectional softmax(q·kᵀ/√d)·v per (sentence, head), keys at or beyond a
/// sentence's length masked out, as Hugging Face's attention mask does. Only the
/// real query rows are computed: padded rows never reach the pooled output.
/// - out: (B·T, H·hd), padded rows left as they were;
/// - qkv: (B·T, 3·H·hd), each row q | k | v;
/// - lengths: (B), each in 1...T; scratch: threads × T × T.
func encoderAttentionForward(
    _ out: FloatPointer, qkv: FloatPointer, lengths: UnsafePointer<Int>, shape s: EncoderAttentionShape,
    scratch: FloatPointer, context: ComputeContext
) {
    let T = s.seqLen, hd = s.headDim, C = s.width, rowWidth = 3 * C
    context.withSingleThreadedBLAS {
        context.parallelChunks(s.batch * s.heads) { chunk, units in
            let scores = scratch.base + chunk * T * T
            for unit in units {
                let b = unit / s.heads, h = unit % s.heads, L = lengths[b]
                let q = qkv.base + b * T * rowWidth + h * hd
                // scores (L, L) = scale · q kᵀ over the real positions only.
                gemm(transA: false, transB: true, m: L, n: L, k: hd, alpha: s.scale,
                     a: q, lda: rowWidth, b: q + C, ldb: rowWidth, beta: 0, c: scores, ldc: L)
                for i in 0..<L { softmaxInPlace(scores + i * L, count: L) }
                gemm(transA: false, transB: false, m: L, n: hd, k: L,
                     a: scores, lda: L, b: q + 2 * C, ldb: rowWidth, beta: 0,
                     c: out.base + b * T * C + h * hd, ldc: C)
            }
        }
    }
}

/// out[b] = mean of hidden[b, 0..<lengths[b]], divided by its L2 norm (at least
/// 1e-12, as torch's `F.normalize`): sentence-transformers' Pooling(mean) then Normalize.
/// - out: (B, C); hidden: (B·T, C); lengths: (B).
func meanPoolNormalized(
    _ out: FloatPointer, hidden: FloatPointer, lengths: UnsafePointer<Int>, batch: Int, seqLen T: Int, c: Int
) {
    for b in 0..<batch {
        let o = out.base + b * c
        o.update(repeating: 0, count: c)
        for t in 0..<lengths[b] {
            let h = hidden.base + (b * T + t) * c
            for i in 0..<c { o[i] += h[i] }
        }
        let inv = 1 / Float(max(lengths[b], 1))
        var norm: Float = 0
        for i in 0..<c {
            o[i] *= inv
            norm += o[i] * o[i]
        }
        let scale = 1 / max(norm.squareRoot(), 1e-12)
        for i in 0..<c { o[i] *= scale }
    }
}
