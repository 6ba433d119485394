"""Tokenizers: EchoCLIP-R's golden ids, the same logic on a tiny vocabulary, properties, errors, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from echosearch.errors import EchosearchError
from echosearch.tokenizers import (
    ClipBPETokenizer,
    MalformedVocabulary,
    MalformedWordPiece,
    TemplateTokenizer,
    Tokenizer,
    TokenizerFileMissing,
    TokenizerSpecError,
    load_tokenizer,
    write_blank_wordpiece,
)

# A tiny template vocabulary. Ids: 0-4 WordPiece specials, then these phrases from 5 in file order.
TINY_PHRASES = [
    "<#> DILATED LEFT VENTRICLE. ",  # 5
    "LV EJECTION FRACTION IS <#>%. ",  # 6
    "THE MITRAL VALVE AREA IS <#> TO <#>CM. ",  # 7: two slots
    "LEFT VENTRICLE. ",  # 8: also the tail of phrase 5 (leftmost-longest must pick 5)
    "NORMAL LEFT VENTRICULAR SIZE. ",  # 9
]
TEMPLATE_SIZE = 5 + len(TINY_PHRASES)  # variable ids start here
BOS = TEMPLATE_SIZE + 132  # 5 specials + [0..100] + ‡ + 5 severities + .0-.9 + 00-09
EOS = BOS + 1


def number(n: int) -> int:
    """The id of a whole number 0..100 as a variable (after the 5 WordPiece specials)."""
    return TEMPLATE_SIZE + 5 + n


SEPARATOR = TEMPLATE_SIZE + 106
SEVERE = TEMPLATE_SIZE + 109


def decimal(d: int) -> int:
    return TEMPLATE_SIZE + 112 + d


def padded(ids: list[int], length: int = 77) -> list[int]:
    return ids + [0] * (length - len(ids))


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tiny")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(TINY_PHRASES), encoding="utf-8")
    return write_blank_wordpiece(folder / "wordpiece.tokenizer"), vocab


@pytest.fixture(scope="module")
def tiny(tiny_files) -> TemplateTokenizer:
    wordpiece, vocab = tiny_files
    return TemplateTokenizer.from_files(wordpiece, vocab)


# ----------------------------------------------------------------------------------------- golden


def test_golden_template_ids_match_every_case(echoclip_ref: Path) -> None:
    tok = TemplateTokenizer.from_files(
        echoclip_ref / "blank_wordpiece.tokenizer", echoclip_ref / "template_vocab.txt"
    )
    cases = json.loads((echoclip_ref / "golden_template_tokens.json").read_text())["cases"]
    assert (tok.bos_id, tok.eos_id) == (907, 908)
    mismatched = [c["text"][:80] for c in cases if tok.encode(c["text"]) != c["ids"]]
    assert not mismatched, f"{len(mismatched)}/{len(cases)} differ, e.g. {mismatched[:3]}"
    batch = tok.encode_batch([c["text"] for c in cases])
    assert batch.tolist() == [c["ids"] for c in cases]


def test_blank_wordpiece_written_in_code_equals_the_reference(echoclip_ref: Path, tiny_files) -> None:
    written, _ = tiny_files
    reference = json.loads((echoclip_ref / "blank_wordpiece.tokenizer").read_text())
    assert json.loads(written.read_text()) == reference


def test_reference_vocabulary_explained(echoclip_ref: Path) -> None:
    tok = TemplateTokenizer.from_files(None, echoclip_ref / "template_vocab.txt")
    ex = tok.explain("Severe dilated left ventricle. LV ejection fraction was 35 %. Pacer lead seen")
    assert ex.phrases == ["SEVERE DILATED LEFT VENTRICLE.", "LV EJECTION FRACTION IS 35%."]
    assert ex.unmatched == ["PACER LEAD SEEN"]
    assert not ex.matched_nothing
    assert tok.explain("pacemaker").matched_nothing


# ---------------------------------------------------------------------------------- tiny vocabulary


def test_tiny_ids_follow_the_rules(tiny: TemplateTokenizer) -> None:
    assert (tiny.bos_id, tiny.eos_id, tiny.vocab_size) == (BOS, EOS, EOS + 1)
    ids = tiny.encode("Severe dilated left ventricle. LV ejection fraction was 35 %")
    assert ids == padded([BOS, 5, SEVERE, 6, number(35), EOS])


def test_tiny_two_slots_are_joined_by_the_separator(tiny: TemplateTokenizer) -> None:
    ids = tiny.encode("the mitral valve area is 1.5 to 2 cm.")
    assert ids == padded([BOS, 7, number(1), decimal(5), SEPARATOR, number(2), EOS])


def test_tiny_values_in_unmatched_text_are_dropped(tiny: TemplateTokenizer) -> None:
    ids = tiny.encode("Heart rate 72 bpm. LV ejection fraction is 40%. Another 9 things")
    assert ids == padded([BOS, 6, number(40), EOS])
    ex = tiny.explain("Heart rate 72 bpm. LV ejection fraction is 40%. Another 9 things")
    assert ex.phrases == ["LV EJECTION FRACTION IS 40%."]
    assert ex.unmatched == ["HEART RATE 72 BPM.", "ANOTHER 9 THINGS"]
    assert ex.variables == ["72", "40", "9"]


def test_tiny_literal_slot_typed_by_a_user_has_no_value(tiny: TemplateTokenizer) -> None:
    assert tiny.encode("LV ejection fraction is <#>%.") == padded([BOS, 6, EOS])


def test_tiny_longest_phrase_wins(tiny: TemplateTokenizer) -> None:
    assert tiny.encode("mild dilated left ventricle.")[:3] == [BOS, 5, TEMPLATE_SIZE + 107]
    assert tiny.encode("left ventricle.")[:3] == [BOS, 8, EOS]


def test_tiny_nothing_matched(tiny: TemplateTokenizer) -> None:
    for text in ["", "a", "pacemaker", "   ", "\ud800 lone surrogate"]:
        assert tiny.encode(text) == padded([BOS, EOS])
        assert tiny.explain(text).matched_nothing


def test_tiny_truncation_keeps_eos_last(tiny: TemplateTokenizer) -> None:
    text = "NORMAL LEFT VENTRICULAR SIZE. " * 100
    ids = tiny.encode(text)
    assert len(ids) == 77 and ids[0] == BOS and ids[-1] == EOS and ids[1:-1] == [9] * 75
    ex = tiny.explain(text)
    assert ex.truncated and len(ex.phrases) == 75


def test_tiny_context_length(tiny_files) -> None:
    tok = TemplateTokenizer.from_files(*tiny_files, context_length=4)
    assert tok.encode("LV ejection fraction is 40%. left ventricle.") == [BOS, 6, number(40), EOS]
    assert tok.encode("left ventricle.") == [BOS, 8, EOS, 0]


def test_tiny_decode_and_phrases(tiny: TemplateTokenizer) -> None:
    ids = tiny.encode("severe dilated left ventricle. lv ejection fraction is 35.5%")
    assert tiny.decode(ids) == ["[BOS]", "<#> DILATED LEFT VENTRICLE.", "<SEVERE>"] + [
        "LV EJECTION FRACTION IS <#>%.",
        "<35>",
        "<.5>",
        "[EOS]",
    ]
    assert tiny.phrases == TINY_PHRASES
    assert tiny.phrase_id("LEFT VENTRICLE. ") == 8 and tiny.phrase_id("nope") is None
    assert tiny.phrase_id("[CLS]") is None
    with pytest.raises(EchosearchError):
        tiny.decode([EOS + 1])


def test_tiny_encode_batch_matches_encode(tiny: TemplateTokenizer) -> None:
    import torch

    texts = ["left ventricle.", "", "LV ejection fraction is 60%", "the mitral valve area is 1 to 2cm"]
    batch = tiny.encode_batch(texts)
    assert batch.dtype == torch.long and tuple(batch.shape) == (4, 77)
    assert batch.tolist() == [tiny.encode(t) for t in texts]
    assert tuple(tiny.encode_batch([]).shape) == (0, 77)


def test_blank_wordpiece_can_be_left_out(tiny_files, tiny: TemplateTokenizer) -> None:
    _, vocab = tiny_files
    without = TemplateTokenizer.from_files(None, vocab)
    text = "severe dilated left ventricle. the mitral valve area is 1.5 to 2cm."
    assert without.encode(text) == tiny.encode(text)


def test_vocabulary_ids_keep_file_order_and_first_duplicate(tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("B PHRASE. \nA PHRASE. \nB PHRASE. \n\n", encoding="utf-8")
    tok = TemplateTokenizer.from_files(None, vocab)
    assert tok.phrases == ["B PHRASE. ", "A PHRASE. "]
    assert tok.encode("a phrase. b phrase.")[:4] == [tok.bos_id, 6, 5, tok.eos_id]


# -------------------------------------------------------------------------------------- properties

TINY_PIECES = TINY_PHRASES + ["12", "3.5", "MILD", "SEVERE ", "‡", "<#>", ". ", "[", "X", "é", "\n", " "]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(), st.lists(st.sampled_from(TINY_PIECES), max_size=60).map("".join)))
def test_encode_never_raises_and_has_the_shape(tiny: TemplateTokenizer, text: str) -> None:
    ids = tiny.encode(text)
    assert len(ids) == tiny.context_length
    assert ids[0] == tiny.bos_id
    assert all(0 <= i < tiny.vocab_size for i in ids)
    eos = ids.index(tiny.eos_id)
    assert all(i == 0 for i in ids[eos + 1 :])  # EOS last or right before the padding
    assert 0 not in ids[:eos]
    tiny.explain(text)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([p for p in TINY_PHRASES if "<#>" not in p]), min_size=1, max_size=20))
def test_whole_phrases_each_become_one_token(tiny: TemplateTokenizer, phrases: list[str]) -> None:
    ids = tiny.encode("".join(phrases))
    assert ids[1 : 1 + len(phrases)] == [tiny.phrase_id(p) for p in phrases]


# ------------------------------------------------------------------------------------------ errors


def test_missing_files(tmp_path: Path, tiny_files) -> None:
    wordpiece, vocab = tiny_files
    with pytest.raises(TokenizerFileMissing, match="vocabulary not found"):
        TemplateTokenizer.from_files(wordpiece, tmp_path / "nope.txt")
    with pytest.raises(TokenizerFileMissing, match="WordPiece base file not found"):
        TemplateTokenizer.from_files(tmp_path / "nope.tokenizer", vocab)


def test_malformed_wordpiece(tmp_path: Path, tiny_files) -> None:
    _, vocab = tiny_files
    not_json = tmp_path / "a.tokenizer"
    not_json.write_text("THIS IS A PHRASE. \n")
    with pytest.raises(MalformedWordPiece, match="not a tokenizers JSON file"):
        TemplateTokenizer.from_files(not_json, vocab)
    from tokenizers import Tokenizer as HF
    from tokenizers.models import BPE

    bpe = tmp_path / "bpe.tokenizer"
    HF(BPE()).save(str(bpe))
    with pytest.raises(MalformedWordPiece, match="expected WordPiece"):
        TemplateTokenizer.from_files(bpe, vocab)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no template phrases"),
        (b"\n\n", "no template phrases"),
        (b"A PHRASE. \n\nANOTHER. \n", ":2: blank line"),
        (b"\xff\xfe\x00binary", "not UTF-8"),
        (b"A\x00B\n", "NUL byte"),
    ],
)
def test_malformed_vocabulary(tmp_path: Path, content: bytes, message: str) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_bytes(content)
    with pytest.raises(MalformedVocabulary, match=message) as info:
        TemplateTokenizer.from_files(None, vocab)
    assert isinstance(info.value, EchosearchError) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------- specs


def test_load_tokenizer_template_spec_resolves_against_base_dir(tiny_files, tiny: TemplateTokenizer) -> None:
    wordpiece, vocab = tiny_files
    tok = load_tokenizer(
        {"kind": "template", "vocab": vocab.name, "wordpiece": wordpiece.name}, base_dir=vocab.parent
    )
    assert isinstance(tok, TemplateTokenizer) and isinstance(tok, Tokenizer)
    assert tok.encode("left ventricle.") == tiny.encode("left ventricle.")


@pytest.mark.parametrize(
    "spec",
    [{"kind": "sentencepiece"}, {}, {"kind": "template"}, ["clip-bpe"], {"kind": "template", "vocab": ""}],
)
def test_load_tokenizer_bad_specs(spec) -> None:
    with pytest.raises(TokenizerSpecError):
        load_tokenizer(spec)


def test_clip_bpe_is_open_clips_tokenizer() -> None:
    import open_clip

    tok = load_tokenizer({"kind": "clip-bpe"})
    assert isinstance(tok, ClipBPETokenizer) and isinstance(tok, Tokenizer)
    texts = ["SEVERE DILATED LEFT VENTRICLE. ", "pacemaker " * 60, ""]
    assert tok.encode_batch(texts).tolist() == open_clip.tokenize(texts).tolist()
    ids = tok.encode("pacer lead")
    assert len(ids) == 77 and ids[0] == tok.bos_id and tok.eos_id in ids and tok.vocab_size == 49408
    tokens = tok.decode(ids)
    assert tokens[0] == "<start_of_text>" and tokens[-1] == "<end_of_text>"
    assert "".join(tokens[1:-1]) == "pacerlead" and len(tokens) == sum(1 for i in ids if i)
    ex = tok.explain("Pacer   LEAD")
    assert ex.cleaned == "pacer lead" and ex.phrases is None and not ex.matched_nothing
    assert tok.explain("pacemaker " * 80).truncated


# --------------------------------------------------------------------------------------------- CLI


def test_cli_tokenize_template(cli, tiny_files) -> None:
    wordpiece, vocab = tiny_files
    text = "Severe dilated left ventricle. Heart rate 72. LV EF is 40%"
    res = cli("tokenize", text, "--vocab", str(vocab), "--wordpiece", str(wordpiece))
    assert res.returncode == 0, res.stderr
    assert "SEVERE DILATED LEFT VENTRICLE." in res.stdout and "unmatched" in res.stdout
    assert f"{BOS} 5 {SEVERE} {EOS}" in res.stdout

    res = cli("tokenize", "pacemaker", "--vocab", str(vocab), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["ids"] == padded([BOS, EOS]) and doc["matched_nothing"] is True
    assert doc["cleaned"] == "PACEMAKER " and doc["unmatched"] == ["PACEMAKER"]


def test_cli_tokenize_errors(cli, tmp_path: Path, tiny_files) -> None:
    res = cli("tokenize", "x", "--vocab", str(tmp_path / "missing.txt"))
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "vocabulary not found" in res.stderr
    res = cli("tokenize", "x", "--vocab", str(tiny_files[1]), "--model", "echoclip-r")
    assert res.returncode == 2 and "not both" in res.stderr
