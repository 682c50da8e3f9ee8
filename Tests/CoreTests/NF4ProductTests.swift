// NF4ProductTests: QLoRA's training products (more than `fewRowsLimit` rows),
// which dequantise the NF4 matrix in the product's precision (whole, or in
// f32 on several threads each thread its own rows), equal the same products
// on the dequantised matrix, forward and transposed, in f32 and in bf16; and
// the bf16 dequantisation is the nearest-even rounding of the Float32 one.
import Testing
import Trial
@testable import Core

@Suite struct NF4ProductTests {
    static func tensor(rows: Int, columns: Int, seed: UInt64, context: ComputeContext) throws -> NF4Tensor {
        let weights = FewRowsProductTests.random(rows * columns, seed: seed)
        return try weights.withUnsafeBufferPointer { try NF4Tensor(quantizing: $0, rows: rows, columns: columns, context: context) }
    }

    /// A product's operands in one arena: the tile scratch, x (rows × in),
    /// its output, dy (rows × out) and the input gradient, starting at `start`.
    struct Buffers {
        let arena: FloatArena
        let tiles, inp, out, dout, dinp: FloatPointer

        init(_ matrix: FrozenMatrix, rows: Int, threads: Int, x: [Float], dy: [Float], start: [Float]) {
            let inDim = matrix.inDim, outDim = matrix.outDim
            arena = FloatArena(capacity: matrix.tileFloats(threads: threads) + rows * (2 * inDim + 2 * outDim) + 5 * 16)
            tiles = FloatPointer(arena.take(matrix.tileFloats(threads: threads)))
            inp = FloatPointer(arena.take(rows * inDim))
            out = FloatPointer(arena.take(rows * outDim))
            dout = FloatPointer(arena.take(rows * outDim))
            dinp = FloatPointer(arena.take(rows * inDim))
            inp.base.update(from: x, count: x.count)
            dout.base.update(from: dy, count: dy.count)
            dinp.base.update(from: start, count: start.count)
        }
    }

    /// Odd shapes: blocks straddle rows and the element count is odd, so the
    /// bf16 scratch ends in half a Float.
    @Test(arguments: [1, 2], [(33, 65), (200, 96), (7, 3)])
    func bf16DequantisationRoundsTheFloatOne(threads: Int, shape: (rows: Int, columns: Int)) throws {
        let context = ComputeContext(threads: threads)
        let t = try Self.tensor(rows: shape.rows, columns: shape.columns, seed: 11, context: context)
        var floats = [Float](repeating: .nan, count: t.count)
        t.dequantizeRows(0..<t.rows, into: &floats)
        for rows in [0..<t.rows, 1..<t.rows, 0..<1] {
            var bits = [UInt16](repeating: 0xFFFF, count: rows.count * t.columns)
            bits.withUnsafeMutableBufferPointer { t.dequantizeRowsBFloat16(rows, into: $0.baseAddress!, context: context) }
            let expected = floats[rows.lowerBound * t.columns..<rows.upperBound * t.columns].map(bfloat16Bits)
            #expect(bits == expected, "rows \(rows) of \(t.rows)×\(t.columns)")
            // The same values held in Float32, for bf16 products without bf16 kernels.
            var held = [Float](repeating: .nan, count: rows.count * t.columns)
            held.withUnsafeMutableBufferPointer { t.dequantizeRowsBFloat16Floats(rows, into: $0.baseAddress!, context: context) }
            #expect(held.map(\.bitPattern) == expected.map { UInt32($0) << 16 }, "rows \(rows) of \(t.rows)×\(t.columns)")
        }
    }

    /// In bf16 with and without bf16 kernels (`ProductPrecision.withoutBF16Kernels`:
    /// the base dequantised to bf16 values held in Float32, multiplied in f32).
    @Test(arguments: [(Precision.f32, true), (.bf16, true), (.bf16, false)], [1, 2])
    func trainingProductsEqualTheDequantisedOnes(setting: (precision: Precision, kernels: Bool), threads: Int) throws {
        let precision = setting.precision
        let context = ComputeContext(threads: threads)
        let outDim = 300, inDim = 192, rows = fewRowsLimit + 21
        let t = try Self.tensor(rows: outDim, columns: inDim, seed: 12, context: context)
        let matrix = FrozenMatrix.nf4(t)
        var dense = [Float](repeating: .nan, count: t.count)
        t.dequantizeRows(0..<t.rows, into: &dense)
        let x = FewRowsProductTests.random(rows * inDim, seed: 13), dy = FewRowsProductTests.random(rows * outDim, seed: 14)
        let start = FewRowsProductTests.random(rows * inDim, seed: 15)

        let buffers = Buffers(matrix, rows: rows, threads: threads, x: x, dy: dy, start: start)
        let (tiles, inp, out, dout, dinp) = (buffers.tiles, buffers.inp, buffers.out, buffers.dout, buffers.dinp)

        var forward = [Float](repeating: 0, count: rows * outDim), backward = start
        let conversionsBefore = ProductScratch.current.conversions
        func run(_ body: () -> Void) { setting.kernels ? body() : ProductPrecision.withoutBF16Kernels(body) }
        run { ProductPrecision.run(precision) {
            matrix.multiply(out: out, inp: inp, n: rows, tiles: tiles, context: context)
            matrix.multiplyTransposed(dinp: dinp, dout: dout, n: rows, accumulate: true, tiles: tiles, context: context)
            // The references: the same products with the dequantised matrix as a plain Float32 operand.
            gemm(transA: false, transB: true, m: rows, n: outDim, k: inDim, a: x, lda: inDim, b: dense, ldb: inDim,
                 beta: 0, c: &forward, ldc: outDim)
            gemm(transA: false, transB: false, m: rows, n: inDim, k: outDim, a: dy, lda: outDim, b: dense, ldb: inDim,
                 beta: 1, c: &backward, ldc: inDim)
        } }
        // Only bf16 kernels convert operands to bf16 bits: the f32 path rounds them in Float32.
        let converted = ProductScratch.current.conversions > conversionsBefore
        #expect(converted == (precision == .bf16 && setting.kernels && MatmulEngine.hasBF16Kernels), "\(setting)")
        let got = Array(UnsafeBufferPointer(start: out.base, count: rows * outDim))
        let gotBackward = Array(UnsafeBufferPointer(start: dinp.base, count: rows * inDim))
        #expect(FewRowsProductTests.relativeError(got, forward) < 1e-6, "forward, \(setting)")
        #expect(FewRowsProductTests.relativeError(gotBackward, backward) < 1e-6, "transposed, \(setting)")
        // And bf16 really is bf16: far from the f32 product on the same operands.
        if precision == .bf16 {
            var f32 = [Float](repeating: 0, count: rows * outDim)
            gemm(transA: false, transB: true, m: rows, n: outDim, k: inDim, a: x, lda: inDim, b: dense, ldb: inDim,
                 beta: 0, c: &f32, ldc: outDim)
            #expect(FewRowsProductTests.relativeError(got, f32) > 1e-4)
        }
    }

    /// Where oneDNN's AVX-512 bf16 matmul reads element (kk, nn) of a K × N
    /// packed B (`BA16a64b2a`), written out here apart from the kernel's.
    static func blockedOffset(rowsOfB: Int, _ kk: Int, _ nn: Int) -> Int {
        (nn / 64) * (rowsOfB * 64) + (kk / 32) * 2048 + ((kk % 32) / 2) * 128 + (nn % 64) * 2 + kk % 2
    }

    /// Every value of the plain bf16 dequantisation lands where the packed
    /// layout puts it, for B = W (backward) and B = Wᵀ (forward), on every
    /// kernel path and split; sizes that are not multiples of 64 are refused
    /// and nothing is written.
    @Test(arguments: [KernelPath.widest, .portable], [1, 2])
    func blockedDequantisationPlacesEveryValue(path: KernelPath, threads: Int) throws {
        let context = ComputeContext(threads: threads)
        for (rows, columns) in [(64, 64), (128, 192), (320, 576)] {
            let t = try Self.tensor(rows: rows, columns: columns, seed: 21, context: context)
            var plain = [UInt16](repeating: 0, count: t.count)
            plain.withUnsafeMutableBufferPointer { t.dequantizeRowsBFloat16(0..<rows, into: $0.baseAddress!, context: context) }
            for transposed in [false, true] {
                var blocked = [UInt16](repeating: 0xFFFF, count: t.count)
                let done = blocked.withUnsafeMutableBufferPointer {
                    t.dequantizeRowsBFloat16Blocked(transposed: transposed, into: $0.baseAddress!, context: context, path: path)
                }
                #expect(done)
                var expected = [UInt16](repeating: 0, count: t.count)
                for r in 0..<rows {
                    for c in 0..<columns {
                        let at = transposed ? Self.blockedOffset(rowsOfB: columns, c, r) : Self.blockedOffset(rowsOfB: rows, r, c)
                        expected[at] = plain[r * columns + c]
                    }
                }
                // Counted rather than compared whole: a failure names the first misplaced value, not two arrays of 184,320.
                let misplaced = zip(blocked, expected).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
                #expect(misplaced.isEmpty, "\(rows)×\(columns) transposed \(transposed) \(path): \(misplaced.count) misplaced, first at \(misplaced.first ?? -1)")
            }
        }
        for (rows, columns) in [(96, 64), (64, 100)] {
            let t = try Self.tensor(rows: rows, columns: columns, seed: 22, context: context)
            var blocked = [UInt16](repeating: 0xFFFF, count: t.count)
            let done = blocked.withUnsafeMutableBufferPointer {
                t.dequantizeRowsBFloat16Blocked(transposed: true, into: $0.baseAddress!, context: context, path: path)
            }
            #expect(!done && blocked.allSatisfy { $0 == 0xFFFF }, "\(rows)×\(columns)")
        }
    }

    /// Panels dequantised a range at a time land where the whole matrix's
    /// packed layout puts them, and nothing else is written; panels past B
    /// are refused, writing nothing.
    @Test(arguments: [KernelPath.widest, .portable])
    func panelsLandWhereTheWholeLayoutPutsThem(path: KernelPath) throws {
        let context = ComputeContext(threads: 1)
        for (rows, columns) in [(128, 192), (320, 576)] {
            let t = try Self.tensor(rows: rows, columns: columns, seed: 27, context: context)
            for transposed in [false, true] {
                var whole = [UInt16](repeating: 0, count: t.count)
                let wrote = whole.withUnsafeMutableBufferPointer {
                    t.dequantizeRowsBFloat16Blocked(transposed: transposed, into: $0.baseAddress!, context: context, path: path)
                }
                try #require(wrote)
                let panelCount = (transposed ? rows : columns) / 64, depth = transposed ? columns : rows
                for panels in [0..<1, 1..<panelCount, 0..<panelCount, 2..<2] {
                    var out = [UInt16](repeating: 0xFFFF, count: t.count)
                    let done = out.withUnsafeMutableBufferPointer {
                        t.dequantizeBFloat16Panels(transposed: transposed, panels, into: $0.baseAddress!, path: path)
                    }
                    let span = 64 * depth * panels.lowerBound..<64 * depth * panels.upperBound
                    #expect(done && Array(out[span]) == Array(whole[span]), "\(rows)×\(columns) transposed \(transposed) panels \(panels)")
                    #expect(out[..<span.lowerBound].allSatisfy { $0 == 0xFFFF } && out[span.upperBound...].allSatisfy { $0 == 0xFFFF })
                }
                var out = [UInt16](repeating: 0xFFFF, count: t.count)
                let done = out.withUnsafeMutableBufferPointer {
                    t.dequantizeBFloat16Panels(transposed: transposed, 0..<(panelCount + 1), into: $0.baseAddress!, path: path)
                }
                #expect(!done && out.allSatisfy { $0 == 0xFFFF })
            }
        }
    }

    /// At SmolLM2-like sizes (multiples of 64, under `perThreadMatrixBytes`)
    /// a bf16 product over an NF4 base runs as one product per thread over
    /// the output panels it dequantised, where each thread has two panels or
    /// more, and computes what the one product over the whole packed matrix
    /// does: forward and backward, accumulating or not; a side with fewer
    /// panels (k and v's 192 rows forward), and more rows than
    /// `perThreadBlockedRowLimit`, take the one product.
    @Test(arguments: [(outDim: 256, inDim: 256, rows: 37), (outDim: 384, inDim: 512, rows: 96), (outDim: 192, inDim: 640, rows: 62),
                      (outDim: 256, inDim: 256, rows: 97)])
    func perThreadBlockedProductsEqualTheSharedOnes(shape: (outDim: Int, inDim: Int, rows: Int)) throws {
        try #require(MatmulEngine.hasBF16Kernels, "needs oneDNN's bf16 kernels (AVX512_BF16), which every machine of this project has")
        try #require(FrozenMatrix.perThread.byEnvironment && FrozenMatrix.blocked.byEnvironment,
                     "\(FrozenMatrix.perThread.environmentKey) or \(FrozenMatrix.blocked.environmentKey)=off turns off what this test checks")
        let context = ComputeContext(threads: 2)
        let (outDim, inDim, rows) = shape
        let t = try Self.tensor(rows: outDim, columns: inDim, seed: 28, context: context)
        let matrix = FrozenMatrix.nf4(t)
        let x = FewRowsProductTests.random(rows * inDim, seed: 29), dy = FewRowsProductTests.random(rows * outDim, seed: 30)
        let start = FewRowsProductTests.random(rows * inDim, seed: 31)
        func products(perThread: Bool, accumulate: Bool) -> (forward: [Float], backward: [Float], perThread: Int) {
            let buffers = Buffers(matrix, rows: rows, threads: 2, x: x, dy: dy, start: start)
            let before = ProductScratch.current.perThreadProducts
            func run() {
                ProductPrecision.run(.bf16) {
                    matrix.multiply(out: buffers.out, inp: buffers.inp, n: rows, tiles: buffers.tiles, context: context)
                    matrix.multiplyTransposed(dinp: buffers.dinp, dout: buffers.dout, n: rows, accumulate: accumulate,
                                              tiles: buffers.tiles, context: context)
                }
            }
            if perThread { run() } else { FrozenMatrix.perThread.withoutIt(run) }
            return (Array(UnsafeBufferPointer(start: buffers.out.base, count: rows * outDim)),
                    Array(UnsafeBufferPointer(start: buffers.dinp.base, count: rows * inDim)),
                    ProductScratch.current.perThreadProducts - before)
        }
        for accumulate in [true, false] {
            let perThread = products(perThread: true, accumulate: accumulate), shared = products(perThread: false, accumulate: accumulate)
            // Past `perThreadBlockedRowLimit` rows (batch 8) the one product.
            let expected = rows > FrozenMatrix.perThreadBlockedRowLimit ? 0 : (outDim >= 256 ? 1 : 0) + (inDim >= 256 ? 1 : 0)
            #expect(perThread.perThread == expected, "\(shape)")
            #expect(shared.perThread == 0)
            #expect(FewRowsProductTests.relativeError(perThread.forward, shared.forward) < 1e-6, "forward, \(shape)")
            #expect(FewRowsProductTests.relativeError(perThread.backward, shared.backward) < 1e-6, "backward, \(shape), accumulate \(accumulate)")
            #expect(perThread.forward.allSatisfy { $0.isFinite } && perThread.backward.allSatisfy { $0.isFinite })
        }
    }

    /// A thread whose panels fail (here its `fill`) leaves its columns to the
    /// calling thread, which multiplies them from plain rows
    /// (`FrozenMatrix.multiplyPanelsPlain`): the columns the other thread
    /// accumulated are not added twice, and the result is the one product's.
    @Test func aFailedThreadsPanelsAreMultipliedOnTheCallingThread() throws {
        try #require(MatmulEngine.hasBF16Kernels, "needs oneDNN's bf16 kernels (AVX512_BF16), which every machine of this project has")
        let context = ComputeContext(threads: 2)
        let outDim = 256, inDim = 384, rows = 40
        let t = try Self.tensor(rows: outDim, columns: inDim, seed: 32, context: context)
        let matrix = FrozenMatrix.nf4(t)
        let x = FewRowsProductTests.random(rows * inDim, seed: 33), dy = FewRowsProductTests.random(rows * outDim, seed: 34)
        let start = FewRowsProductTests.random(rows * inDim, seed: 35)
        let reference = Buffers(matrix, rows: rows, threads: 2, x: x, dy: dy, start: start)
        FrozenMatrix.perThread.withoutIt {
            ProductPrecision.run(.bf16) {
                matrix.multiply(out: reference.out, inp: reference.inp, n: rows, tiles: reference.tiles, context: context)
                matrix.multiplyTransposed(dinp: reference.dinp, dout: reference.dout, n: rows, accumulate: true, tiles: reference.tiles,
                                          context: context)
            }
        }
        for forward in [true, false] {
            let (n, k) = forward ? (outDim, inDim) : (inDim, outDim)
            let a = forward ? x : dy
            var c = forward ? [Float](repeating: .nan, count: rows * n) : start
            var bits = [UInt16](repeating: 0, count: t.count)
            var fallbacks: [Range<Int>] = []
            let ran = ProductPrecision.run(.bf16) {
                a.withUnsafeBufferPointer { ap in
                    c.withUnsafeMutableBufferPointer { cp in
                        bits.withUnsafeMutableBufferPointer { bp in
                            let (a, c, b) = (ap.baseAddress!, cp.baseAddress!, bp.baseAddress!)
                            return gemmBFloat16PerThreadIntoPanels(
                                transB: forward, m: rows, n: n, k: k, a: a, beta: forward ? 0 : 1, c: c, b: b, context: context,
                                fill: { $0.lowerBound == 0 && t.dequantizeBFloat16Panels(transposed: forward, $0, into: b) },
                                fallback: {
                                    fallbacks.append($0)
                                    FrozenMatrix.multiplyPanelsPlain(t, forward: forward, $0, m: rows, a: a, beta: forward ? 0 : 1, c: c, scratch: b)
                                })
                        }
                    }
                }
            }
            let panelCount = n / 64
            #expect(ran && fallbacks == [panelCount / 2..<panelCount], "forward \(forward): \(fallbacks)")
            let expected = forward ? Array(UnsafeBufferPointer(start: reference.out.base, count: rows * n))
                : Array(UnsafeBufferPointer(start: reference.dinp.base, count: rows * n))
            #expect(FewRowsProductTests.relativeError(c, expected) < 1e-6, "forward \(forward)")
        }
    }

    /// At sizes that are multiples of 64 a bf16 training product over an NF4
    /// base multiplies B dequantised into oneDNN's packed layout (where the
    /// CPU's bf16 kernels read that layout: every AVX-512 BF16 machine of
    /// this project), and its results are those of the plain path.
    @Test(arguments: [1, 2])
    func blockedProductsEqualThePlainOnes(threads: Int) throws {
        let context = ComputeContext(threads: threads)
        let outDim = 320, inDim = 192, rows = fewRowsLimit + 21
        let t = try Self.tensor(rows: outDim, columns: inDim, seed: 23, context: context)
        let matrix = FrozenMatrix.nf4(t)
        let x = FewRowsProductTests.random(rows * inDim, seed: 24), dy = FewRowsProductTests.random(rows * outDim, seed: 25)
        let start = FewRowsProductTests.random(rows * inDim, seed: 26)
        func products(blocked: Bool) -> (forward: [Float], backward: [Float], blockedProducts: Int) {
            let buffers = Buffers(matrix, rows: rows, threads: threads, x: x, dy: dy, start: start)
            let (tiles, inp, out, dout, dinp) = (buffers.tiles, buffers.inp, buffers.out, buffers.dout, buffers.dinp)
            let before = ProductScratch.current.blockedProducts
            func run() {
                ProductPrecision.run(.bf16) {
                    matrix.multiply(out: out, inp: inp, n: rows, tiles: tiles, context: context)
                    matrix.multiplyTransposed(dinp: dinp, dout: dout, n: rows, accumulate: true, tiles: tiles, context: context)
                }
            }
            // The one product over the whole matrix (a thread's own panels are `perThreadBlockedProductsEqualTheSharedOnes`).
            FrozenMatrix.perThread.withoutIt { if blocked { run() } else { FrozenMatrix.blocked.withoutIt(run) } }
            return (Array(UnsafeBufferPointer(start: out.base, count: rows * outDim)),
                    Array(UnsafeBufferPointer(start: dinp.base, count: rows * inDim)), ProductScratch.current.blockedProducts - before)
        }
        let blocked = products(blocked: true), plain = products(blocked: false)
        let key = OneDNNMatmul.Key(transA: false, transB: true, m: rows, n: outDim, k: inDim, lda: inDim, ldb: inDim, ldc: outDim,
                                   alpha: 1, beta: 0, bf16: true, threads: threads)
        let readsBlocked = MatmulEngine.hasBF16Kernels && FrozenMatrix.blocked.byEnvironment && OneDNNMatmul.readsBlockedBFloat16(key)
        if OneDNNMatmul.instructionSet == "avx512_core_bf16" { #expect(readsBlocked) }
        #expect(blocked.blockedProducts == (readsBlocked ? 2 : 0))
        #expect(plain.blockedProducts == 0)
        #expect(FewRowsProductTests.relativeError(blocked.forward, plain.forward) < 1e-6)
        #expect(FewRowsProductTests.relativeError(blocked.backward, plain.backward) < 1e-6)
        #expect(blocked.forward.allSatisfy(\.isFinite) && blocked.backward.allSatisfy(\.isFinite))
    }

    /// With several threads an f32 training product over an NF4 base runs as
    /// one product per thread over the rows of W that thread dequantised
    /// (forward: its columns of the output; backward: its partial sum, added
    /// after), and computes what the one product over the whole matrix does:
    /// at W's row counts that split evenly and unevenly over 2 and 3 threads,
    /// at batch-1-like and larger row counts, blocks straddling W's rows, the
    /// backward accumulating or not.
    /// One thread, bf16, more rows than the limit or a matrix past its size
    /// take the one product.
    @Test(arguments: [2, 3], [(outDim: 300, inDim: 192, rows: 37), (outDim: 257, inDim: 128, rows: 130), (outDim: 65, inDim: 33, rows: 512)])
    func perThreadProductsEqualTheSharedOnes(threads: Int, shape: (outDim: Int, inDim: Int, rows: Int)) throws {
        let context = ComputeContext(threads: threads)
        let (outDim, inDim, rows) = shape
        let t = try Self.tensor(rows: outDim, columns: inDim, seed: 31, context: context)
        let matrix = FrozenMatrix.nf4(t)
        let x = FewRowsProductTests.random(rows * inDim, seed: 32), dy = FewRowsProductTests.random(rows * outDim, seed: 33)
        let start = FewRowsProductTests.random(rows * inDim, seed: 34)
        func products(shared: Bool, accumulate: Bool, precision: Precision = .f32, threads: Int? = nil)
            -> (forward: [Float], backward: [Float], perThread: Int, oneDNN: Int) {
            let context = threads.map { ComputeContext(threads: $0) } ?? context
            let buffers = Buffers(matrix, rows: rows, threads: context.threads, x: x, dy: dy, start: start)
            let before = ProductScratch.current.perThreadProducts, executions = OneDNNMatmul.executionsOnThisThread
            func run() {
                ProductPrecision.run(precision) {
                    matrix.multiply(out: buffers.out, inp: buffers.inp, n: rows, tiles: buffers.tiles, context: context)
                    matrix.multiplyTransposed(dinp: buffers.dinp, dout: buffers.dout, n: rows, accumulate: accumulate,
                                              tiles: buffers.tiles, context: context)
                }
            }
            if shared { FrozenMatrix.perThread.withoutIt(run) } else { run() }
            return (Array(UnsafeBufferPointer(start: buffers.out.base, count: rows * outDim)),
                    Array(UnsafeBufferPointer(start: buffers.dinp.base, count: rows * inDim)),
                    ProductScratch.current.perThreadProducts - before, OneDNNMatmul.executionsOnThisThread - executions)
        }
        try #require(FrozenMatrix.perThread.byEnvironment, "\(FrozenMatrix.perThread.environmentKey)=off turns off what this test checks")
        for accumulate in [true, false] {
            let perThread = products(shared: false, accumulate: accumulate), shared = products(shared: true, accumulate: accumulate)
            #expect(perThread.perThread == 2, "\(shape), accumulate \(accumulate)")
            // The calling thread's share ran on oneDNN's one-thread primitive, not on OpenBLAS.
            if MatmulEngine.current == .oneDNN { #expect(perThread.oneDNN >= 2, "\(shape)") }
            #expect(shared.perThread == 0)
            let forwardError = FewRowsProductTests.relativeError(perThread.forward, shared.forward)
            let backwardError = FewRowsProductTests.relativeError(perThread.backward, shared.backward)
            #expect(forwardError < 1e-6, "forward, \(shape), \(threads) threads")
            #expect(backwardError < 1e-6, "backward, \(shape), \(threads) threads, accumulate \(accumulate)")
            #expect(perThread.forward.allSatisfy(\.isFinite) && perThread.backward.allSatisfy(\.isFinite))
        }
        #expect(products(shared: false, accumulate: true, threads: 1).perThread == 0)
        #expect(products(shared: false, accumulate: true, precision: .bf16).perThread == 0)
    }

    /// The rule's limits: rows past `perThreadRowLimit`, a matrix past
    /// `perThreadMatrixBytes` as Floats, and fewer rows of W than threads
    /// take the one product.
    @Test func perThreadProductsStopAtTheirLimits() throws {
        let context = ComputeContext(threads: 2)
        func count(outDim: Int, inDim: Int, rows: Int) throws -> Int {
            let t = try Self.tensor(rows: outDim, columns: inDim, seed: 35, context: context)
            let matrix = FrozenMatrix.nf4(t)
            let buffers = Buffers(matrix, rows: rows, threads: 2, x: FewRowsProductTests.random(rows * inDim, seed: 36),
                                  dy: FewRowsProductTests.random(rows * outDim, seed: 37), start: [Float](repeating: 0, count: rows * inDim))
            let before = ProductScratch.current.perThreadProducts
            ProductPrecision.run(.f32) {
                matrix.multiply(out: buffers.out, inp: buffers.inp, n: rows, tiles: buffers.tiles, context: context)
            }
            return ProductScratch.current.perThreadProducts - before
        }
        try #require(FrozenMatrix.perThread.byEnvironment, "\(FrozenMatrix.perThread.environmentKey)=off turns off what this test checks")
        #expect(try count(outDim: 64, inDim: 64, rows: FrozenMatrix.perThreadRowLimit) == 1)
        #expect(try count(outDim: 64, inDim: 64, rows: FrozenMatrix.perThreadRowLimit + 1) == 0)
        // 896 × 1024 Floats: exactly the limit, then one row more.
        #expect(4 * 896 * 1024 == FrozenMatrix.perThreadMatrixBytes)
        #expect(try count(outDim: 896, inDim: 1024, rows: 20) == 1)
        #expect(try count(outDim: 897, inDim: 1024, rows: 20) == 0)
        // SmolLM2's largest projection takes it, Llama-3.2-1B's smallest does not.
        #expect(4 * 1536 * 576 <= FrozenMatrix.perThreadMatrixBytes && 4 * 512 * 2048 > FrozenMatrix.perThreadMatrixBytes)
        // Fewer rows of W than threads.
        #expect(try count(outDim: 1, inDim: 64, rows: 20) == 0)
    }

    /// Inside another parallel region libgomp gives the products' region a
    /// team of one thread, which runs every chunk in turn: each chunk's
    /// partial sum still has its own place, so the backward equals the one
    /// product's.
    @Test func perThreadProductsInsideAnotherRegion() throws {
        try #require(FrozenMatrix.perThread.byEnvironment, "\(FrozenMatrix.perThread.environmentKey)=off turns off what this test checks")
        let outDim = 300, inDim = 192, rows = 40, threads = 3
        let t = try Self.tensor(rows: outDim, columns: inDim, seed: 41, context: ComputeContext(threads: threads))
        let matrix = FrozenMatrix.nf4(t)
        let x = FewRowsProductTests.random(rows * inDim, seed: 42), dy = FewRowsProductTests.random(rows * outDim, seed: 43)
        let start = FewRowsProductTests.random(rows * inDim, seed: 44)
        let nested = Buffers(matrix, rows: rows, threads: threads, x: x, dy: dy, start: start)
        let reference = Buffers(matrix, rows: rows, threads: threads, x: x, dy: dy, start: start)
        func run(_ b: Buffers) {
            let context = ComputeContext(threads: threads)
            ProductPrecision.run(.f32) {
                matrix.multiply(out: b.out, inp: b.inp, n: rows, tiles: b.tiles, context: context)
                matrix.multiplyTransposed(dinp: b.dinp, dout: b.dout, n: rows, accumulate: true, tiles: b.tiles, context: context)
            }
        }
        let ran = LockedValue(0)
        ComputeContext(threads: 2).parallelChunks(2) { chunk, _ in
            guard chunk == 0 else { return }
            let before = ProductScratch.current.perThreadProducts
            run(nested)
            ran.withLock { $0 = ProductScratch.current.perThreadProducts - before }
        }
        FrozenMatrix.perThread.withoutIt { run(reference) }
        #expect(ran.withLock { $0 } == 2)
        let got = Array(UnsafeBufferPointer(start: nested.dinp.base, count: rows * inDim))
        let expected = Array(UnsafeBufferPointer(start: reference.dinp.base, count: rows * inDim))
        #expect(FewRowsProductTests.relativeError(got, expected) < 1e-6)
        let forward = Array(UnsafeBufferPointer(start: nested.out.base, count: rows * outDim))
        let forwardExpected = Array(UnsafeBufferPointer(start: reference.out.base, count: rows * outDim))
        #expect(FewRowsProductTests.relativeError(forward, forwardExpected) < 1e-6)
    }
}
