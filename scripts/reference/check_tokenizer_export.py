#!/usr/bin/env python3
"""Checks a tokenizer written by FactSweep (`Tokenizer.writeHuggingFaceFiles`) in transformers.

    python scripts/reference/check_tokenizer_export.py DIR [--golden smollm2|llama3]

DIR holds tokenizer.json and tokenizer_config.json (an exported model directory
works too). It is loaded with plain `AutoTokenizer.from_pretrained(DIR)`, and
for every case of Tests/CoreTests/Golden/tokenizer/<golden>.json (written by
make_tokenizer_golden.py from the original tokenizers) it compares:

- `encode(text, add_special_tokens=False)`, and the same with special-token
  parsing off (the backend's `encode_special_tokens`), with the golden ids;
- `decode(ids)` with and without `skip_special_tokens`, and the decodes of
  prefixes that cut a character, with the golden text;
- `encode("Hello", add_special_tokens=True)`: BOS only where the original adds it;
- `apply_chat_template` (text, and ids with tokenize=True) for every golden chat,
  using the exported `chat_template`. The Llama 3.2 template puts today's date in
  unless `date_string` is given, so the goldens' "26 Jul 2024" is passed.

The golden is chosen from the vocabulary (<|start_header_id|> means llama3)
unless --golden says. Exits 1 on any difference, printing the first few.
"""
import argparse
import json
import pathlib
import sys

from transformers import AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "Tests" / "CoreTests" / "Golden" / "tokenizer"
GOLDEN_DATE = "26 Jul 2024"


def chat_ids(result):
    """apply_chat_template(tokenize=True) gives a list or, in transformers 5, a BatchEncoding."""
    if isinstance(result, list):
        return result
    return list(result["input_ids"])


def check(directory, golden_name):
    hf = AutoTokenizer.from_pretrained(str(directory))
    if golden_name is None:
        golden_name = "llama3" if "<|start_header_id|>" in hf.get_vocab() else "smollm2"
    golden = json.loads((GOLDEN / f"{golden_name}.json").read_text())
    failures = []
    counts = {"encode": 0, "decode": 0, "chat": 0}

    def expect(ok, what):
        if not ok:
            failures.append(what)

    expect(hf.bos_token_id == golden["bosTokenId"], f"bos_token_id {hf.bos_token_id} != {golden['bosTokenId']}")
    expect(hf.eos_token_id == golden["eosTokenId"], f"eos_token_id {hf.eos_token_id} != {golden['eosTokenId']}")

    backend = hf.backend_tokenizer
    for case in golden["encode"]:
        text = case["text"]
        ids = hf.encode(text, add_special_tokens=False)
        expect(ids == case["ids"], f"encode {text!r}: {ids} != {case['ids']}")
        backend.encode_special_tokens = True
        literal = backend.encode(text, add_special_tokens=False).ids
        backend.encode_special_tokens = False
        expect(literal == case["idsWithoutSpecialParsing"], f"encode without special parsing {text!r}")
        decoded = hf.decode(case["ids"])
        expect(decoded == case["decoded"], f"decode {case['ids']}: {decoded!r} != {case['decoded']!r}")
        skipped = hf.decode(case["ids"], skip_special_tokens=True)
        expect(skipped == case["decodedSkippingSpecial"], f"decode skipping special {case['ids']}: {skipped!r}")
        counts["encode"] += 1
    for case in golden["decodePrefixes"]:
        decoded = hf.decode(case["ids"])
        expect(decoded == case["text"], f"decode prefix {case['ids']}: {decoded!r} != {case['text']!r}")
        counts["decode"] += 1

    with_bos = hf.encode("Hello", add_special_tokens=True)
    expected_with_bos = golden.get("withBos", hf.encode("Hello", add_special_tokens=False))
    expect(with_bos == expected_with_bos, f"encode('Hello', add_special_tokens=True) = {with_bos}, expected {expected_with_bos}")

    expect(hf.chat_template is not None, "tokenizer_config.json has no chat_template")
    for case in golden["chat"] if hf.chat_template is not None else []:
        options = dict(add_generation_prompt=case["addGenerationPrompt"], date_string=GOLDEN_DATE)
        text = hf.apply_chat_template(case["messages"], tokenize=False, **options)
        expect(text == case["text"], f"chat text {case['messages']}: {text!r} != {case['text']!r}")
        ids = chat_ids(hf.apply_chat_template(case["messages"], tokenize=True, **options))
        expect(ids == case["ids"], f"chat ids {case['messages']}: {ids} != {case['ids']}")
        counts["chat"] += 1

    summary = (f"{directory} as {golden_name} ({type(hf).__name__}): {counts['encode']} strings, "
               f"{counts['decode']} prefix decodes, {counts['chat']} chats")
    if failures:
        print(f"FAIL {summary}: {len(failures)} differences")
        for failure in failures[:10]:
            print("  " + failure[:400])
        return False
    print(f"OK   {summary}: all equal to the goldens")
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=pathlib.Path)
    parser.add_argument("--golden", choices=["smollm2", "llama3"])
    args = parser.parse_args()
    sys.exit(0 if check(args.directory, args.golden) else 1)


if __name__ == "__main__":
    main()
