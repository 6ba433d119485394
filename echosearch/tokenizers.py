"""Text tokenizers behind one small interface: EchoCLIP-R's template tokenizer and CLIP's BPE.

A model bundle names its tokenizer with a spec (``{"kind": "clip-bpe"}`` or ``{"kind": "template",
"vocab": ..., "wordpiece": ...}``) and :func:`load_tokenizer` turns it into an object with the
:class:`Tokenizer` methods, so callers never care which one they hold.

The template tokenizer must give EchoCLIP-R's ids exactly, or the model reads garbage. How it works:

1. the text is cleaned (:func:`echosearch.reports.clean_report`) and its numbers and severity words
   are replaced by ``<#>`` slots (:func:`echosearch.reports.extract_variables`);
2. the slotted text is split into vocabulary phrases by the ``tokenizers`` library: the phrases are
   added tokens on a blank WordPiece model, which matches them leftmost-longest; text between
   phrases becomes ``[UNK]`` and is dropped, together with the variables that fell inside it;
3. each phrase id is followed by the ids of its own variables (joined by ``‡`` when there are
   several), tokenized by a second added-token tokenizer whose ids come after the phrases';
4. BOS and EOS wrap the ids; the result is padded with 0 or cut to ``context_length`` with EOS last.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tokenizers import Tokenizer as HFTokenizer
from tokenizers.models import WordPiece

from echosearch.errors import ConfigError, UsageError
from echosearch.reports import SLOT, clean_report, extract_variables

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: The special tokens of the blank WordPiece base, in id order.
WORDPIECE_SPECIALS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")
#: Joins the values of one phrase that has several slots ("2.0‡3.5").
VARIABLE_SEPARATOR = "‡"
#: What each variable value may be tokenized into (after the WordPiece specials).
VARIABLE_VOCAB: tuple[str, ...] = (
    "[UNK]",
    *(str(i) for i in range(101)),
    VARIABLE_SEPARATOR,
    "MILD",
    "MODERATE",
    "SEVERE",
    "MILD/MODERATE",
    "MODERATE/SEVERE",
    *(f".{i}" for i in range(10)),
    *(f"0{i}" for i in range(10)),
)
PAD_ID = 0
#: Wordings the vocabulary has in one form only, rewritten on the slotted text before matching.
SLOTTED_REWRITES = (
    (
        "THE INFERIOR VENA CAVA IS NORMAL IN SIZE AND SHOWS A NORMAL RESPIRATORY COLLAPSE, CONSISTENT"
        " WITH NORMAL RIGHT ATRIAL PRESSURE (<#>MMHG).",
        "THE INFERIOR VENA CAVA SHOWS A NORMAL RESPIRATORY COLLAPSE CONSISTENT WITH NORMAL RIGHT"
        " ATRIAL PRESSURE (<#>MMHG).",
    ),
    ("RESTING SEGMENTAL WALL MOTION ANALYSIS.:", "RESTING SEGMENTAL WALL MOTION ANALYSIS."),
)
_VARIABLE_CACHE_MAX = 65536


class TokenizerError(ConfigError):
    """A tokenizer could not be built from its files or spec."""


class TokenizerFileMissing(TokenizerError):
    """A vocabulary or WordPiece file named by the caller or a bundle does not exist."""


class MalformedVocabulary(TokenizerError):
    """A template vocabulary file is not one phrase per line of UTF-8 text."""


class MalformedWordPiece(TokenizerError):
    """A WordPiece base file is not a ``tokenizers`` JSON file with a WordPiece model."""


class TokenizerSpecError(TokenizerError):
    """A tokenizer spec (from a model bundle) is not one this module understands."""


@dataclass(frozen=True)
class Explanation:
    """How a text was tokenized: what a user needs to see why a query matches (or does not).

    ``phrases`` lists the template phrases that matched, with their values filled in, in order; it is
    ``None`` for tokenizers without phrases (CLIP BPE). ``unmatched`` lists the text that matched no
    phrase and so is invisible to the model. ``matched_nothing`` is true when the model sees only
    BOS and EOS: a free-text query that maps to nothing.
    """

    text: str
    cleaned: str
    tokens: list[str]
    ids: list[int]
    phrases: list[str] | None = None
    unmatched: list[str] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)
    truncated: bool = False

    @property
    def matched_nothing(self) -> bool:
        return sum(1 for i in self.ids if i != PAD_ID) <= 2

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "matched_nothing": self.matched_nothing}


@runtime_checkable
class Tokenizer(Protocol):
    """What every tokenizer offers; model code depends on this and nothing else."""

    context_length: int

    @property
    def bos_id(self) -> int: ...

    @property
    def eos_id(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: Sequence[str]) -> torch.Tensor: ...

    def decode(self, ids: Iterable[int]) -> list[str]: ...

    def explain(self, text: str) -> Explanation: ...


def _check_context_length(context_length: int) -> int:
    if not isinstance(context_length, int) or context_length < 2:
        raise UsageError(f"context_length must be an integer >= 2 (BOS and EOS), got {context_length!r}")
    return context_length


def _as_text(text: str) -> str:
    """The text, with unencodable lone surrogates replaced so the Rust tokenizer accepts it."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _pad_or_truncate(ids: list[int], length: int, eos_id: int) -> list[int]:
    """Pad with 0, or cut to ``length`` keeping EOS as the last id (the reference's rule)."""
    if len(ids) > length:
        ids = ids[:length]
        ids[-1] = eos_id
        return ids
    return ids + [PAD_ID] * (length - len(ids))


def _to_tensor(rows: list[list[int]]) -> torch.Tensor:
    import torch  # lazily: the CLI's tokenize command should not pay torch's import time

    return torch.tensor(rows, dtype=torch.long)


# --------------------------------------------------------------------------------------- WordPiece


def _blank_wordpiece() -> HFTokenizer:
    """A WordPiece model knowing only the special tokens: every non-phrase text becomes ``[UNK]``."""
    vocab = {token: i for i, token in enumerate(WORDPIECE_SPECIALS)}
    tok = HFTokenizer(WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=500))
    tok.add_special_tokens(list(WORDPIECE_SPECIALS))
    return tok


def write_blank_wordpiece(path: str | Path) -> Path:
    """Write the blank WordPiece base file that template and variable tokenizers start from.

    It is equivalent to EchoCLIP's ``blank_wordpiece.tokenizer`` (same JSON), built in code so the
    project needs no copy of it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _blank_wordpiece().save(str(path), pretty=True)
    return path


def _load_wordpiece(path: Path) -> str:
    """The WordPiece base file's JSON text, checked to be a WordPiece ``tokenizers`` file."""
    if not path.is_file():
        raise TokenizerFileMissing(f"WordPiece base file not found: {path}")
    try:
        data = path.read_text(encoding="utf-8")
        tok = HFTokenizer.from_str(data)
    except Exception as exc:  # the Rust side raises plain Exception with a parser message
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MalformedWordPiece(f"{path} is not a tokenizers JSON file ({detail})") from exc
    if not isinstance(tok.model, WordPiece):
        raise MalformedWordPiece(f"{path} has a {type(tok.model).__name__} model, expected WordPiece")
    if tok.token_to_id(tok.model.unk_token) is None:
        raise MalformedWordPiece(f"{path}: its unknown token {tok.model.unk_token!r} is not in its vocab")
    return data


# -------------------------------------------------------------------------------------- vocabulary


def read_vocabulary(path: str | Path) -> list[str]:
    """Template phrases, one per line, trailing spaces kept (phrases end with a space, as cleaned text).

    Blank lines in the middle are an error (a blank phrase would match stray spaces); blank lines at
    the end are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise TokenizerFileMissing(f"template vocabulary not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedVocabulary(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise MalformedVocabulary(f"{path} holds no template phrases")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise MalformedVocabulary(f"{path}:{number}: blank line; every line must be a template phrase")
        if "\x00" in line:
            raise MalformedVocabulary(f"{path}:{number}: NUL byte; is this a binary file?")
    return lines


# -------------------------------------------------------------------------------- template tokenizer


@dataclass
class _Parsed:
    """One text after cleaning and phrase matching, before ids are laid out."""

    cleaned: str
    variables: list[str]
    pieces: list[tuple[int, list[str]]]  # (phrase id, the values of its slots)
    unmatched: list[str]


class TemplateTokenizer:
    """EchoCLIP-R's template tokenizer: one token per report phrase, plus tokens for its values."""

    def __init__(self, phrases: Sequence[str], wordpiece_json: str | None = None, context_length: int = 77):
        """Build from phrases and a WordPiece base (JSON text; ``None``: the blank one, built in code)."""
        self.context_length = _check_context_length(context_length)
        if wordpiece_json is None:
            wordpiece_json = _blank_wordpiece().to_str()
        self._template = HFTokenizer.from_str(wordpiece_json)
        self._template.add_tokens(list(phrases))
        self._variable = HFTokenizer.from_str(wordpiece_json)
        self._variable.add_tokens(list(VARIABLE_VOCAB))

        self._unk_id = self._template.token_to_id(self._template.model.unk_token)
        template_vocab = self._template.get_vocab()
        self._template_size = len(template_vocab)
        self._token_text = {i: t for t, i in template_vocab.items()}
        self._slots = {i: t.count(SLOT) for t, i in template_vocab.items()}
        self._base_size = len(HFTokenizer.from_str(wordpiece_json).get_vocab())
        self._phrase_ids = sorted(i for i in self._token_text if i >= self._base_size)

        variable_vocab = self._variable.get_vocab()
        self._variable_text = {i + self._template_size: t for t, i in variable_vocab.items()}
        self._bos = self._template_size + len(variable_vocab)
        self._eos = self._bos + 1
        self._variable_cache: dict[str, list[int]] = {}

    @classmethod
    def from_files(
        cls, wordpiece_path: str | Path | None, vocab_path: str | Path, context_length: int = 77
    ) -> TemplateTokenizer:
        """Load a template vocabulary and its WordPiece base (``None``: the blank base, built in code)."""
        wordpiece = None if wordpiece_path is None else _load_wordpiece(Path(wordpiece_path))
        phrases = read_vocabulary(vocab_path)
        if len(set(phrases)) < len(phrases):
            log.warning("%s repeats some phrases; each keeps the id of its first line", vocab_path)
        return cls(phrases, wordpiece, context_length)

    @property
    def bos_id(self) -> int:
        return self._bos

    @property
    def eos_id(self) -> int:
        return self._eos

    @property
    def vocab_size(self) -> int:
        return self._eos + 1

    @property
    def phrases(self) -> list[str]:
        """The template phrases in id order, exactly as in the vocabulary (trailing space included)."""
        return [self._token_text[i] for i in self._phrase_ids]

    def phrase_id(self, phrase: str) -> int | None:
        """The id of a vocabulary phrase, or ``None`` when it is not one."""
        i = self._template.token_to_id(phrase)
        return i if i is not None and i >= self._base_size else None

    # -- encoding

    def _prepare(self, text: str) -> tuple[str, list[str], str]:
        cleaned = clean_report(_as_text(text))
        variables, slotted = extract_variables(cleaned)
        for old, new in SLOTTED_REWRITES:
            slotted = slotted.replace(old, new)
        return cleaned, variables, slotted

    def _parse(self, cleaned: str, variables: list[str], slotted: str, encoding: Any) -> _Parsed:
        """Pair each phrase with its own values; values inside unmatched text are dropped with it.

        Slots and values line up by position in the text (a literal ``<#>`` typed by a user has no
        value, so phrases after it may get fewer values; the reference fails on such text).
        """
        pieces: list[tuple[int, list[str]]] = []
        unmatched: list[str] = []
        k = 0  # index of the next slot's value
        for token_id, (start, end) in zip(encoding.ids, encoding.offsets, strict=True):
            if token_id == self._unk_id:
                fragment = slotted[start:end]
                n = fragment.count(SLOT)
                if fragment.strip():
                    unmatched.append(_fill(fragment, variables[k : k + n]))
            else:
                n = self._slots[token_id]
                pieces.append((token_id, variables[k : k + n]))
            k += n
        return _Parsed(cleaned, variables, pieces, unmatched)

    def _variable_ids(self, values: list[str]) -> list[int]:
        if not values:
            return []
        joined = VARIABLE_SEPARATOR.join(values)
        ids = self._variable_cache.get(joined)
        if ids is None:
            ids = [i + self._template_size for i in self._variable.encode(joined).ids]
            if len(self._variable_cache) < _VARIABLE_CACHE_MAX:
                self._variable_cache[joined] = ids
        return ids

    def _layout(self, parsed: _Parsed) -> list[int]:
        ids = [self._bos]
        for phrase_id, values in parsed.pieces:
            ids.append(phrase_id)
            ids.extend(self._variable_ids(values))
        ids.append(self._eos)
        return ids

    def _encode_untruncated(self, text: str) -> tuple[_Parsed, list[int]]:
        cleaned, variables, slotted = self._prepare(text)
        parsed = self._parse(cleaned, variables, slotted, self._template.encode(slotted))
        return parsed, self._layout(parsed)

    def encode(self, text: str) -> list[int]:
        """Exactly ``context_length`` ids: BOS, phrases each followed by its values, EOS, padding."""
        return _pad_or_truncate(self._encode_untruncated(text)[1], self.context_length, self._eos)

    def encode_batch(self, texts: Sequence[str]) -> torch.Tensor:
        """``[len(texts), context_length]`` int64 ids (about 0.1 ms a report on one core)."""
        rows = [self.encode(t) for t in texts]
        if not rows:
            return _to_tensor([]).reshape(0, self.context_length)
        return _to_tensor(rows)

    # -- reading ids back

    def token_text(self, token_id: int) -> str:
        """A readable token: a phrase (stripped), ``<value>`` for a variable, ``[BOS]``/``[EOS]``/``[PAD]``."""
        if token_id == self._bos:
            return "[BOS]"
        if token_id == self._eos:
            return "[EOS]"
        if token_id == PAD_ID:
            return "[PAD]"
        if token_id in self._token_text:
            return self._token_text[token_id].strip()
        if token_id in self._variable_text:
            return f"<{self._variable_text[token_id]}>"
        raise UsageError(f"token id {token_id} is outside this vocabulary (0..{self.vocab_size - 1})")

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Readable tokens for ids, padding left out (see :meth:`token_text`)."""
        return [self.token_text(int(i)) for i in ids if int(i) != PAD_ID]

    def explain(self, text: str) -> Explanation:
        """The cleaned text, the matched phrases (values filled in), what matched nothing, the ids."""
        parsed, full = self._encode_untruncated(text)
        ids = _pad_or_truncate(full, self.context_length, self._eos)
        phrases, position = [], 1
        for phrase_id, values in parsed.pieces:
            if position >= self.context_length - 1:
                break
            phrases.append(_fill(self._token_text[phrase_id], values))
            position += 1 + len(self._variable_ids(values))
        return Explanation(
            text=text,
            cleaned=parsed.cleaned,
            tokens=self.decode(ids),
            ids=ids,
            phrases=phrases,
            unmatched=parsed.unmatched,
            variables=parsed.variables,
            truncated=len(full) > self.context_length,
        )


def _fill(phrase: str, values: list[str]) -> str:
    """A phrase with its slots replaced by its values, in order (slots without a value stay)."""
    parts = phrase.split(SLOT)
    out = [parts[0]]
    for k, part in enumerate(parts[1:]):
        out.append(values[k] if k < len(values) else SLOT)
        out.append(part)
    return "".join(out).strip()


# ------------------------------------------------------------------------------------------ CLIP BPE


class ClipBPETokenizer:
    """CLIP's byte-pair tokenizer from open_clip (EchoCLIP's), behind the :class:`Tokenizer` interface.

    Texts go to open_clip as they are (it lower-cases and tidies whitespace itself), as EchoCLIP's
    own zero-shot code does; report cleaning is a template-tokenizer step.
    """

    def __init__(self, context_length: int = 77):
        from open_clip.tokenizer import SimpleTokenizer

        self.context_length = _check_context_length(context_length)
        self._tok = SimpleTokenizer(context_length=context_length)

    @property
    def bos_id(self) -> int:
        return self._tok.sot_token_id

    @property
    def eos_id(self) -> int:
        return self._tok.eot_token_id

    @property
    def vocab_size(self) -> int:
        return self._tok.vocab_size

    def encode(self, text: str) -> list[int]:
        return self._tok([_as_text(text)], context_length=self.context_length)[0].tolist()

    def encode_batch(self, texts: Sequence[str]) -> torch.Tensor:
        if not texts:
            return _to_tensor([]).reshape(0, self.context_length)
        return self._tok([_as_text(t) for t in texts], context_length=self.context_length)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """One readable string per id (``<start_of_text>``, ``left</w>`` shown as ``left``), no padding."""
        out = []
        for i in ids:
            i = int(i)
            if i == PAD_ID:
                continue
            if not 0 <= i < self.vocab_size:
                raise UsageError(f"token id {i} is outside the CLIP vocabulary (0..{self.vocab_size - 1})")
            out.append(self._tok.decode([i]).strip())
        return out

    def explain(self, text: str) -> Explanation:
        text = _as_text(text)
        ids = self.encode(text)
        full_length = len(self._tok.encode(text)) + 2
        return Explanation(
            text=text,
            cleaned=self._tok.clean_fn(text),
            tokens=self.decode(ids),
            ids=ids,
            phrases=None,
            truncated=full_length > self.context_length,
        )


# ------------------------------------------------------------------------------------------- specs


def load_tokenizer(spec: dict, base_dir: str | Path | None = None, context_length: int = 77) -> Tokenizer:
    """The tokenizer a model bundle's spec names; relative file names resolve against ``base_dir``.

    ``{"kind": "clip-bpe"}`` or ``{"kind": "template", "vocab": F, "wordpiece": F}`` (``wordpiece``
    may be left out: the blank base is then built in code).
    """
    if not isinstance(spec, dict):
        raise TokenizerSpecError(f"a tokenizer spec must be a mapping with a 'kind', got {spec!r}")
    kind = spec.get("kind")
    if kind == "clip-bpe":
        return ClipBPETokenizer(context_length=context_length)
    if kind == "template":
        if not spec.get("vocab"):
            raise TokenizerSpecError("a template tokenizer spec needs 'vocab' (the template vocabulary file)")
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        vocab = base / spec["vocab"]
        wordpiece = base / spec["wordpiece"] if spec.get("wordpiece") else None
        return TemplateTokenizer.from_files(wordpiece, vocab, context_length=context_length)
    raise TokenizerSpecError(f"unknown tokenizer kind {kind!r} (expected 'clip-bpe' or 'template')")
