// ChatTemplate: the two chat formats FactSweep's models use, built in rather
// than interpreted from Jinja, each equal to transformers' apply_chat_template
// for the model's own template (see scripts/reference/make_tokenizer_golden.py).

/// One turn of a conversation.
public struct ChatMessage: Sendable, Equatable, Codable {
    /// "system", "user" or "assistant" (any other role is rendered as given).
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: "assistant", content: content) }
}

/// A model's chat format: how messages become prompt text, and which tokens end a turn.
public struct ChatTemplate: Sendable, Equatable {
    public enum Format: Sendable, Equatable {
        /// `<|im_start|>role\ncontent<|im_end|>\n`; when the first message is
        /// not a system message, `defaultSystemPrompt` is put before it.
        case chatML(defaultSystemPrompt: String?)
        /// Llama 3.x: `<|begin_of_text|>`, then always a system header carrying
        /// the knowledge cut-off and `todayDate`, then trimmed messages.
        case llama3(todayDate: String)
    }

    public let format: Format
    /// The token closing every turn (<|im_end|>, <|eot_id|>): the end of an
    /// assistant reply in training targets.
    public let endOfTurnTokenId: Int32
    /// Tokens that stop generation: end of turn, and end of text / message.
    public let stopTokenIds: [Int32]

    /// SmolLM2's default system message, from its GGUF `tokenizer.chat_template`.
    public static let smolLMSystemPrompt = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    /// The date the Llama 3.2 template falls back to; transformers would put
    /// today's date instead, which would make prompts depend on the day.
    public static let llama3DefaultDate = "26 Jul 2024"

    /// The template a tokenizer's vocabulary implies: ChatML (SmolLM2's
    /// defaults) when it has <|im_start|>, Llama 3 when it has <|start_header_id|>.
    public init(for tokenizer: Tokenizer, llama3Date: String = ChatTemplate.llama3DefaultDate) throws {
        func ids(_ names: [String]) -> [Int32] { names.compactMap(tokenizer.id(of:)) }
        if tokenizer.id(of: "<|im_start|>") != nil, let end = tokenizer.id(of: "<|im_end|>") {
            format = .chatML(defaultSystemPrompt: Self.smolLMSystemPrompt)
            endOfTurnTokenId = end
            stopTokenIds = ids(["<|im_end|>", "<|endoftext|>"])
        } else if tokenizer.id(of: "<|start_header_id|>") != nil, tokenizer.id(of: "<|begin_of_text|>") != nil,
                  let end = tokenizer.id(of: "<|eot_id|>") {
            format = .llama3(todayDate: llama3Date)
            endOfTurnTokenId = end
            stopTokenIds = ids(["<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"])
        } else {
            throw ChatTemplateError.unknownFormat
        }
    }

    /// The prompt text for `messages`; with `addGenerationPrompt`, it ends
    /// with the header of an assistant turn for the model to complete.
    /// Llama 3's tool calls and "tool"/"ipython" turns are not modelled: every
    /// role is rendered as a plain header, like "user" and "assistant".
    /// Encode it with `parseSpecial: true` (and without adding a BOS: the
    /// Llama 3 text already starts with <|begin_of_text|>).
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool) -> String {
        switch format {
        case let .chatML(defaultSystemPrompt):
            var text = ""
            if let defaultSystemPrompt, let first = messages.first, first.role != "system" {
                text += "<|im_start|>system\n\(defaultSystemPrompt)<|im_end|>\n"
            }
            for message in messages { text += "<|im_start|>\(message.role)\n\(message.content)<|im_end|>\n" }
            if addGenerationPrompt { text += "<|im_start|>assistant\n" }
            return text
        case let .llama3(todayDate):
            var rest = messages[...]
            var system = ""
            if let first = rest.first, first.role == "system" {
                system = Self.jinjaTrim(first.content)
                rest = rest.dropFirst()
            }
            var text = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            text += "Cutting Knowledge Date: December 2023\nToday Date: \(todayDate)\n\n\(system)<|eot_id|>"
            for message in rest {
                text += "<|start_header_id|>\(message.role)<|end_header_id|>\n\n\(Self.jinjaTrim(message.content))<|eot_id|>"
            }
            if addGenerationPrompt { text += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
            return text
        }
    }

    /// Jinja's `trim`, which is Python's `str.strip()`: Unicode White_Space
    /// plus the separators U+001C–U+001F that Python also counts as space.
    static func jinjaTrim(_ text: String) -> String {
        func isSpace(_ scalar: Unicode.Scalar) -> Bool {
            scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value)
        }
        let scalars = text.unicodeScalars
        guard let start = scalars.firstIndex(where: { !isSpace($0) }),
              let last = scalars.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(scalars[start...last])
    }
}

/// Why no chat template could be chosen.
public enum ChatTemplateError: Error, CustomStringConvertible, Equatable {
    case unknownFormat

    public var description: String {
        switch self {
        case .unknownFormat:
            return "the tokenizer's vocabulary has neither <|im_start|>/<|im_end|> (ChatML) nor "
                + "<|start_header_id|>/<|eot_id|> (Llama 3): no built-in chat template fits this model"
        }
    }
}
