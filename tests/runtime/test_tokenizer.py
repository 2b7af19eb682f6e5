"""runtime.tokenizer against Hugging Face's BertTokenizer on the same vocab.txt: the same tokens
and the same padded ids for text that exercises every rule (case, accents, punctuation, CJK,
control characters, special tokens, unknown and over-long words)."""
from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest

from runtime.tokenizer import WordPiece

WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "play", "##ing", "##ed", "##s", "un", "##believ", "##able",
         "hello", "world", "cafe", "naive", "!", ",", ".", "?", "'", "-", "中", "国", "##er", "runn", "##ning", "is",
         "good"]
VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + list(string.ascii_lowercase)
         + ["##" + c for c in string.ascii_lowercase] + list(string.digits) + ["A", "Hello"])
TEXTS = ["The cat sat on the mat.", "Hello, world!!", "Café naïve", "unbelievable playing", "中国 is good",
         "a [MASK] dog", "tab\there\nnewline", "x" * 120, "runner's running-dog", "  ", "Ünïcödé façade",
         "weird\u200bzero width", "Hello HELLO hello", "dogs?cats", "123 4567", "", "a" * 30 + " b c d e f g h"]


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("lowercase", [True, False])
def test_same_tokens_and_ids_as_hugging_face(vocab_file: Path, lowercase: bool) -> None:
    from transformers import BertTokenizer
    hf = BertTokenizer(str(vocab_file), do_lower_case=lowercase)
    ours = WordPiece.from_lines(vocab_file.read_text(encoding="utf-8").splitlines(), lowercase=lowercase)
    for text in TEXTS:
        assert ours.tokens(text) == hf.tokenize(text), text
    mine = ours.encode(TEXTS, 12)
    theirs = hf(TEXTS, padding="max_length", truncation=True, max_length=12)
    np.testing.assert_array_equal(mine["input_ids"], np.array(theirs["input_ids"]))
    np.testing.assert_array_equal(mine["attention_mask"], np.array(theirs["attention_mask"]))
    np.testing.assert_array_equal(mine["token_type_ids"], np.array(theirs["token_type_ids"]))
    assert mine["input_ids"].dtype == np.int64 and mine["input_ids"].shape == (len(TEXTS), 12)


def test_a_vocabulary_without_the_special_tokens_is_refused() -> None:
    with pytest.raises(ValueError, match=r"lacks \[UNK\], \[CLS\]"):
        WordPiece.from_lines(["[PAD]", "[SEP]", "hello"])
