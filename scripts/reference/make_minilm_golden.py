#!/usr/bin/env python3
"""Golden token ids and sentence embeddings of all-MiniLM-L6-v2 for the Swift embedder.

Writes Tests/CoreTests/Golden/minilm/reference.json from models/all-minilm-l6-v2
(see scripts/setup.sh). Run from anywhere, offline:

    HF_HUB_OFFLINE=1 python scripts/reference/make_minilm_golden.py

setup.sh copies only config.json, model.safetensors and tokenizer.json, not the
sentence-transformers files (modules.json, sentence_bert_config.json,
1_Pooling/config.json). The pipeline those files describe is therefore built
explicitly here: Transformer(max_seq_length=256) -> Pooling(mean) -> Normalize,
which is what the published model's modules.json, sentence_bert_config.json
("max_seq_length": 256) and 1_Pooling/config.json (pooling_mode_mean_tokens) say.

Floats are rounded to 7 significant digits to keep the file small; the Swift test
allows 1e-4 per component.
"""
import json
import os
import pathlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import sentence_transformers
import torch
import transformers
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules.normalize import Normalize
from sentence_transformers.base.modules.transformer import Transformer
from sentence_transformers.sentence_transformer.modules.pooling import Pooling

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "all-minilm-l6-v2"
OUT = ROOT / "Tests" / "CoreTests" / "Golden" / "minilm" / "reference.json"
MAX_SEQ_LENGTH = 256

LONG = " ".join(
    f"In {1900 + i}, the biographer noted that Ada Lovelace's notes on the Analytical Engine, "
    f"translated from Menabrea's French article, ran to note {chr(65 + i % 26)} and beyond."
    for i in range(12)
)

SENTENCES = [
    "Marie Curie was born in Warsaw in 1867.",
    "She was born in Warsaw, Poland, on 7 November 1867.",
    "Alan Turing studied mathematics at King's College, Cambridge.",
    "Ada Lovelace is often regarded as the first computer programmer.",
    "I don't know.",
    "Café Ürgüp naïve résumé Ångström",
    "東京大学で学んだ",
    "他在北京大学学习物理。",
    "한국어 문장입니다",
    "Emoji 🤗🎉 and 👍🏽 and a family 👨\u200d👩\u200d👧",
    "What?!... -- (yes) [no] {maybe} <tag> ¿Qué? «quoted» — dash",
    "MiXeD CaSe SHOUTING and lowercase",
    "Numbers: 3.14159, 2,718,281 and 1e-12; 42nd; 1879–1955",
    "",
    "   leading\tand\ttabs\n\nnewlines   trailing   ",
    "zero\u200bwidth\u00a0nbsp\u3000ideographic soft\u00adhyphen",
    "A [SEP] inside and [CLS] too",
    "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
    "x" * 120 + " short",
    LONG,
]

# Tokenization only: where `tokenizers`' Unicode 8.0 category tables, its CJK
# ranges, lowercasing after accent stripping, cleaning and added tokens show.
TOKEN_CASES = [
    "a\u2e44b a\u2e42b a\ua8fc b a\U0001145bb",  # Po: 9.0 not split; 7.0/8.0 split
    "a\u1df6b a\u1df5b a\u08e3b a\u1abeb",  # Mn: 10.0 kept, 7.0/8.0 stripped; Me kept
    "a\u0890b a\u08e2b a\u061cb a\u2066b a\u180eb",  # Cf: 14.0/9.0 kept, older removed
    "\u0378z a\ue000b \U000e0001t a\x7fb a\x00b a\ufffdb",  # unassigned, private use, tag, controls
    "\u2028q a\u00a0\u0085b x\u3000y \u1680z",
    "İstanbul ǅ ﬁne Ⅻ ΣΑΣ ς Straße",
    "a$b+c<d=e>f^g`h|i~j¿k‐l«m»n§o¶p·q",
    "\U0002b820 \U0002b920 \u4e00\u9fff \u3400 \uf900 \U0002f800",
    "[UNK] [PAD] [MASK] [sep] [CLS][SEP]",
    "a" * 100,
    "a" * 101,
    "한국어 か が ガ パ",
]

PAIRS = [
    (0, 1),  # same fact, different words
    (0, 2),  # different people
    (2, 3),
    (0, 4),  # an answer and a refusal
    (5, 13),  # accents and the empty string
]


def rounded(values):
    return [float(f"{v:.7g}") for v in values]


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    transformer = Transformer(str(MODEL), max_seq_length=MAX_SEQ_LENGTH)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
    model.eval()

    cases = []
    for text in SENTENCES:
        features = model.preprocess([text])
        ids = features["input_ids"][0].tolist()
        cases.append({"text": text, "ids": ids})
    assert max(len(c["ids"]) for c in cases) == MAX_SEQ_LENGTH, "the long sentence must be truncated"

    token_cases = [{"text": text, "ids": model.preprocess([text])["input_ids"][0].tolist()} for text in TOKEN_CASES]

    with torch.no_grad():
        embeddings = model.encode(SENTENCES, batch_size=8, convert_to_tensor=True)
    for case, embedding in zip(cases, embeddings):
        case["embedding"] = rounded(embedding.tolist())

    pairs = []
    for a, b in PAIRS:
        cosine = torch.nn.functional.cosine_similarity(embeddings[a], embeddings[b], dim=0).item()
        pairs.append({"a": SENTENCES[a], "b": SENTENCES[b], "cosine": float(f"{cosine:.7g}")})

    document = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "pipeline": "Transformer(max_seq_length=256) -> Pooling(mean) -> Normalize",
        "max_seq_length": MAX_SEQ_LENGTH,
        "versions": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "sentences": cases,
        "token_cases": token_cases,
        "pairs": pairs,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One line per sentence and pair: small, and diffs stay readable.
    lines = [json.dumps({k: v for k, v in document.items() if k not in ("sentences", "token_cases", "pairs")}, ensure_ascii=False)[:-1]]
    for key in ("sentences", "token_cases", "pairs"):
        items = [json.dumps(item, ensure_ascii=False, separators=(",", ":")) for item in document[key]]
        lines.append(f', "{key}": [\n' + ",\n".join(items) + "\n]")
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "}\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(cases)} sentences, {len(pairs)} pairs")


if __name__ == "__main__":
    main()
