// LlamaConfiguration+Validate: the checks a configuration from a file must
// pass before anything is sized from it. A config.json or GGUF header is
// hostile until checked: a zero, a negative or an overflowing size would
// otherwise trap or allocate without bound later, far from the field at fault.

extension LlamaConfiguration {
    /// Checks the relations the implementation relies on; every error names
    /// the config.json field at fault.
    public func validate() throws {
        func fail(_ field: String, _ why: String) -> ModelConfigurationError {
            .invalidValue(field: field, reason: why)
        }
        if vocabularySize <= 0 { throw fail("vocab_size", "must be positive") }
        // Token ids are Int32 throughout (tokenizers, batches, generation).
        if vocabularySize > Int(Int32.max) { throw fail("vocab_size", "must be at most \(Int32.max)") }
        if hiddenSize <= 0 { throw fail("hidden_size", "must be positive") }
        if intermediateSize <= 0 { throw fail("intermediate_size", "must be positive") }
        if layerCount <= 0 { throw fail("num_hidden_layers", "must be positive") }
        if headCount <= 0 { throw fail("num_attention_heads", "must be positive") }
        if kvHeadCount <= 0 || headCount % kvHeadCount != 0 {
            throw fail("num_key_value_heads", "must divide num_attention_heads (\(headCount))")
        }
        if headDimension <= 0 || headDimension % 2 != 0 {
            throw fail("head_dim", "must be a positive even number")
        }
        if !(rmsNormEps > 0) { throw fail("rms_norm_eps", "must be positive") }
        if !(ropeTheta > 0) { throw fail("rope_theta", "must be positive") }
        try validateRopeScaling()
        try validateSizes()
        let tokenIds = (bosTokenId.map { [("bos_token_id", $0)] } ?? []) + eosTokenIds.map { ("eos_token_id", $0) }
        for (field, id) in tokenIds where !(0..<vocabularySize).contains(id) {
            throw fail(field, "\(id) is outside the vocabulary of \(vocabularySize)")
        }
    }

    /// Llama 3's rescaling divides by `factor` and by `high - low`, and
    /// compares wavelengths with `original / low`: any of them zero, negative
    /// or not finite would turn every frequency into NaN without a word.
    private func validateRopeScaling() throws {
        guard case let .llama3(factor, low, high, original) = ropeScaling else { return }
        func fail(_ field: String, _ why: String) -> ModelConfigurationError {
            .invalidValue(field: "rope_scaling." + field, reason: why)
        }
        if !(factor.isFinite && factor > 0) { throw fail("factor", "\(factor) must be positive and finite") }
        if !(low.isFinite && low > 0) { throw fail("low_freq_factor", "\(low) must be positive and finite") }
        if !(high.isFinite && high > low) {
            throw fail("high_freq_factor", "\(high) must be finite and above low_freq_factor (\(low))")
        }
        if original <= 0 { throw fail("original_max_position_embeddings", "\(original) must be positive") }
    }

    /// Every tensor's element count, and the whole model's bytes with the
    /// packed copies `LlamaModel` may make (twice two layouts of four-byte
    /// values), must fit in `Int`: the layout, the arena and the memory rules
    /// multiply these sizes unchecked.
    private func validateSizes() throws {
        let query = try CheckedSize.product(headCount, headDimension, field: "head_dim", "num_attention_heads × head_dim")
        let kv = try CheckedSize.product(kvHeadCount, headDimension, field: "head_dim", "num_key_value_heads × head_dim")
        let embedding = try CheckedSize.product(vocabularySize, hiddenSize, field: "vocab_size", "vocab_size × hidden_size")
        let attention = try CheckedSize.product(query, hiddenSize, field: "hidden_size", "num_attention_heads × head_dim × hidden_size")
        let keyValue = try CheckedSize.product(kv, hiddenSize, field: "hidden_size", "num_key_value_heads × head_dim × hidden_size")
        let mlp = try CheckedSize.product(intermediateSize, hiddenSize, field: "intermediate_size", "intermediate_size × hidden_size")
        let what = "the parameters of a layer"
        let layer = try CheckedSize.sum(
            hiddenSize, hiddenSize, attention, attention, keyValue, keyValue, mlp, mlp, mlp, field: "hidden_size", what)
        let layers = try CheckedSize.product(layerCount, layer, field: "num_hidden_layers", "num_hidden_layers × \(what)")
        let total = try CheckedSize.sum(layers, embedding, embedding, hiddenSize, field: "num_hidden_layers", "the parameter count")
        _ = try CheckedSize.product(total, 16, field: "num_hidden_layers", "the model's bytes with its packed copies")
    }
}
