// Embedding: rows of the token table, and the scatter-add of their gradient.

/// - out: (N, C); tokens: (N); table: (V, C).
public func embeddingForward(_ out: FloatPointer, tokens: UnsafePointer<Int32>, table: FloatPointer, n: Int, c: Int) {
    for row in 0..<n {
        (out.base + row * c).update(from: table.base + Int(tokens[row]) * c, count: c)
    }
}

/// dtable (V, C) += dout rows at their tokens. Serial: repeated tokens would race.
public func embeddingBackward(dtable: FloatPointer, dout: FloatPointer, tokens: UnsafePointer<Int32>, n: Int, c: Int) {
    for row in 0..<n {
        let dst = dtable.base + Int(tokens[row]) * c, src = dout.base + row * c
        for i in 0..<c { dst[i] += src[i] }
    }
}
