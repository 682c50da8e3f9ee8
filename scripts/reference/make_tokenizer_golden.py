#!/usr/bin/env python3
"""Golden token ids, decodes and chat-template renderings for the Swift tokenizer tests.

Writes Tests/CoreTests/Golden/tokenizer/{smollm2,llama3}.json from the models in
models/ (see scripts/setup.sh). Run from anywhere:

    python scripts/reference/make_tokenizer_golden.py

SmolLM2: transformers builds a tokenizer from the GGUF metadata, but its GGUF
conversion drops the `Digits(individual_digits)` pre-tokenizer that SmolLM2's own
tokenizer.json has and that llama.cpp applies for `tokenizer.ggml.pre = "smollm"`.
The reference ids therefore come from that tokenizer with the pre-tokenizer put
back; the few strings where the GGUF conversion as-is differs are recorded under
`ggufConversionIds` so that the difference stays visible.

Llama 3.2: the shipped tokenizer_config.json has no chat_template, so the official
Llama 3.2 Instruct template is kept beside this script. Its default date comes from
`strftime_now` (today) in transformers; the date is pinned to the template's own
fallback, "26 Jul 2024", to make the goldens reproducible.
"""
import json
import pathlib
import random

from tokenizers import pre_tokenizers
from transformers import AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
OUT = ROOT / "Tests" / "CoreTests" / "Golden" / "tokenizer"
HERE = pathlib.Path(__file__).resolve().parent

PARAGRAPH = (
    "In 1879, the physicist James Clerk Maxwell's treatise was already 6 years old; "
    "its 1,000+ pages—dense with equations like ∇·E = ρ/ε₀—had reshaped how people "
    "thought about light.\n\nToday, engineers in Zürich, 東京 and São Paulo still "
    "quote it: \"The true logic of this world is the calculus of probabilities.\" "
    "Isn't that remarkable?   It's 2024-07-26T12:34:56Z, and the answer is 42!!! 🚀\n"
)

# Random mixtures of the pieces the scanners treat differently, fixed seed.
PIECES = ["a", "Z", "é", "ſ", "日", "한", "ß", "1", "23", "٣", "½", " ", "  ", "\t", "\n", "\r\n", "\r",
          "\u00a0", "\u3000", "'", "'s", "'LL", "'re", "!", "..", "-", "_", "😀", "👍🏽", "\u200d", "\u0301",
          "<|im_end|>", "<|eot_id|>", "<", "|", "\x1d"]


def fuzz_strings(count=160):
    rng = random.Random(1234)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 14))) for _ in range(count)]


STRINGS = [
    "", " ", "  ", "   ", "Hello world", " Hello world", "   leading spaces",
    "trailing spaces   ", "Hello\tworld\t\ttabs", "\t\tindented", "line1\nline2\n\nline3\n",
    "windows\r\nline\r\n\r\nend", "  \n  \n", " \n\n\t x", "a  1", "x  12345",
    "1234567890", "3.14159 and 2,718,281,828", "12345678901234567890123",
    "٣٤٥ ½ Ⅻ ²³ ①", "I'm you're he's they've we'll she'd it't",
    "I'M YOU'RE HE'S THEY'VE WE'LL SHE'D", "don'T 'S 'll 'LL x'Ll", "it'ſ", "''s '",
    "café naïve résumé Ångström", "Ünïcödé", "e\u0301 decomposed", "日本語のテキスト、中文文本。한국어",
    "emoji 🤗🎉 👍🏽", "👨\u200d👩\u200d👧\u200d👦 family ZWJ", "🏳️\u200d🌈 flag", "Здравствуй, мир!",
    "مرحبا بالعالم", "func(x) { return x**2; } // comment", "$$$ !!! ??? ... ---",
    "<|im_start|>user\nhi<|im_end|>\n", "text<|im_end|>more", " <|im_end|> ",
    "<|begin_of_text|>Hello<|eot_id|>", "<|start_header_id|>user<|end_header_id|>\n\n",
    "<|im_start|", "<<|eot_id|>>", "a\u00a0b non-breaking", "\u2003em space\u3000ideographic",
    "zero\u200bwidth", "\x00\x01\x1f control", "a\x04b \x04\x06\x1d x", "\ufeffBOM", "😀" * 5, "a" * 40, " " * 17 + "x",
    PARAGRAPH,
] + fuzz_strings()

CHATS = [
    ([("user", "Hello!")], True),
    ([("system", "You are terse."), ("user", "What is 2+2?")], True),
    ([("user", "Hi"), ("assistant", "Hello! How can I help?"), ("user", "Tell me a joke.")], True),
    ([("user", "Hi"), ("assistant", "Hey")], False),
    ([("system", "  padded system \n"), ("user", "\t padded user \n\n")], True),
    ([("user", "first"), ("user", "second"), ("system", "late system")], True),
    ([("user", "unicode ✓ 日本 🤗"), ("assistant", "  reply with spaces  ")], False),
]


def encode_cases(hf, backend, gguf_backend=None):
    """`hf.encode(text, add_special_tokens=False)` plus the same without parsing specials."""
    cases = []
    for text in STRINGS:
        ids = hf.encode(text, add_special_tokens=False)
        assert ids == backend.encode(text, add_special_tokens=False).ids, text
        backend.encode_special_tokens = True
        literal = backend.encode(text, add_special_tokens=False).ids
        backend.encode_special_tokens = False
        case = {
            "text": text,
            "ids": ids,
            "idsWithoutSpecialParsing": literal,
            "decoded": backend.decode(ids, skip_special_tokens=False),
            "decodedSkippingSpecial": backend.decode(ids, skip_special_tokens=True),
        }
        if gguf_backend is not None:
            as_is = gguf_backend.encode(text, add_special_tokens=False).ids
            if as_is != ids:
                case["ggufConversionIds"] = as_is
        cases.append(case)
    return cases


def decode_cases(backend, cases):
    """Token prefixes that cut a multi-byte character: HF replaces the broken bytes."""
    out = []
    for case in cases:
        ids = case["ids"]
        for end in range(1, len(ids)):
            text = backend.decode(ids[:end], skip_special_tokens=False)
            if "\ufffd" in text:
                out.append({"ids": ids[:end], "text": text})
        if len(out) > 40:
            break
    return out


def chat_cases(hf, **kwargs):
    out = []
    for messages, gen in CHATS:
        msgs = [{"role": r, "content": c} for r, c in messages]
        text = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen, **kwargs)
        out.append({
            "messages": msgs,
            "addGenerationPrompt": gen,
            "text": text,
            "ids": hf.encode(text, add_special_tokens=False),
        })
    return out


def smollm2():
    directory = MODELS / "smollm2-135m-instruct"
    hf = AutoTokenizer.from_pretrained(str(directory), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    from tokenizers import Tokenizer
    as_converted = Tokenizer.from_str(hf.backend_tokenizer.to_str())
    hf.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    backend = hf.backend_tokenizer
    cases = encode_cases(hf, backend, as_converted)
    return {
        "source": "transformers AutoTokenizer from the GGUF, pre-tokenizer Digits(individual)+ByteLevel",
        "bosTokenId": hf.bos_token_id, "eosTokenId": hf.eos_token_id,
        "encode": cases, "decodePrefixes": decode_cases(backend, cases),
        "chat": chat_cases(hf),
    }


def llama3():
    directory = MODELS / "llama-3.2-tokenizer"
    hf = AutoTokenizer.from_pretrained(str(directory))
    template = (HERE / "llama-3.2-instruct-chat-template.jinja").read_text()
    backend = hf.backend_tokenizer
    cases = encode_cases(hf, backend)
    return {
        "source": "transformers AutoTokenizer from tokenizer.json; official Llama 3.2 Instruct chat template",
        "bosTokenId": hf.bos_token_id, "eosTokenId": hf.eos_token_id,
        "withBos": hf.encode("Hello", add_special_tokens=True),
        "encode": cases, "decodePrefixes": decode_cases(backend, cases),
        "chat": chat_cases(hf, chat_template=template, date_string="26 Jul 2024"),
    }


def compact_json(data):
    """One line per case: small, and diffs show which case changed."""
    def dump(value):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    lines = []
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            body = ",\n  ".join(dump(item) for item in value)
            lines.append(f"{dump(key)}:[\n  {body}\n ]")
        else:
            lines.append(f"{dump(key)}:{dump(value)}")
    return "{\n " + ",\n ".join(lines) + "\n}\n"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, make in (("smollm2", smollm2), ("llama3", llama3)):
        data = make()
        (OUT / f"{name}.json").write_text(compact_json(data))
        differing = sum("ggufConversionIds" in c for c in data["encode"])
        print(f"{name}: {len(data['encode'])} strings, {len(data['chat'])} chats, "
              f"{len(data['decodePrefixes'])} broken-byte decodes, {differing} differ from GGUF conversion")


if __name__ == "__main__":
    main()
