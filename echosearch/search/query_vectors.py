"""From what a user asks to the vector the index is searched with: free text (through query
understanding, :mod:`echosearch.query`), a clip (by id, file or decoded clip), and suggestions when
the model's vocabulary understood nothing."""

from __future__ import annotations

import difflib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from echosearch.errors import UsageError
from echosearch.reports import SLOT
from echosearch.search.context import OpenSpace
from echosearch.store import queries as q


class NoTemplateMatch(UsageError):
    """A free-text query of which the template tokenizer understood nothing."""

    def __init__(self, text: str, suggestions: list[str]):
        self.suggestions = suggestions
        self.notes: list[str] = []
        hint = f" Try: {suggestions[0]!r}" if suggestions else ""
        super().__init__(f"the query {text!r} matches no phrase of the model's reporting template.{hint}")


class QueryVectors:
    """Query encoding and interpretation for one space's model.

    ``titles``: a callable giving the display name of each task (label conditions of an
    interpretation are shown by it)."""

    #: Text embeddings kept (a phrase of a template vocabulary, or a sentence): ~1 KB each at D=256.
    TEXT_CACHE = 4096

    def __init__(self, archive: OpenSpace, titles: Callable[[], dict[str, str]]):
        self.archive = archive
        self._titles = titles
        self._lexicon = None
        self._texts: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()
        self._texts_lock = threading.Lock()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """The text tower's unit vectors of ``texts`` [N, D], each encoded once and then remembered.

        Why: query understanding turns clinicians' words into a few hundred lexicon phrases, so
        nearly every query is phrases already seen, and the text tower is most of a text search's
        time (the demo's: ~10 ms a phrase on two busy cores; EchoCLIP's 12-layer tower far more).
        Keyed by the encoder too: a reloaded model never reads another's vectors.
        """
        encoder = self.archive.encoder
        keys = [(id(encoder), text) for text in texts]
        with self._texts_lock:
            known = {k: self._texts[k] for k in keys if k in self._texts}
            for k in known:
                self._texts.move_to_end(k)
        missing = list(dict.fromkeys(k for k in keys if k not in known))
        if missing:
            fresh = encoder.encode_text([text for _, text in missing]).numpy()
            known.update(zip(missing, fresh, strict=True))
            with self._texts_lock:
                self._texts.update(zip(missing, fresh, strict=True))
                while len(self._texts) > self.TEXT_CACHE:
                    self._texts.popitem(last=False)
        return np.stack([known[k] for k in keys])

    @property
    def lexicon(self):
        """The model's query lexicon (configs/lexicon/): what clinicians' words mean to it."""
        if self._lexicon is None:
            from echosearch.query.lexicon import lexicon_for

            self._lexicon = lexicon_for(self.archive.model_name, self.archive.encoder.tokenizer)
        return self._lexicon

    def text_vector(self, text: str) -> tuple[np.ndarray, list[str]]:
        """The unit vector of a text as typed, and notes on how the tokenizer understood it."""
        text = (text or "").strip()
        if not text:
            raise UsageError("the query is empty")
        encoder = self.archive.encoder
        notes: list[str] = []
        explanation = encoder.tokenizer.explain(text)
        if explanation.phrases is not None:
            if explanation.matched_nothing:
                raise NoTemplateMatch(text, self.suggest(text))
            if explanation.unmatched:
                notes.append("ignored (matches no template phrase): " + "; ".join(explanation.unmatched))
        return self.encode_texts([text])[0], notes

    def clip_vector(self, target: Any) -> tuple[np.ndarray, int | None, str | None]:
        """A clip's unit vector from a video id, a file path or an EchoClip.

        Returns ``(vector, video_id or None, study_uid or None)`` so callers can exclude the clip
        itself and its study. A file that is already indexed (same content hash) is looked up, not
        re-encoded.
        """
        archive = self.archive
        video_id = as_video_id(target)
        if video_id is not None:
            if video_id not in archive.index:
                raise UsageError(f"video {video_id} is not in the index")
            with archive.db.session() as s:
                study_uid = q.study_uid_of_video(s, video_id)
            return archive.index.reconstruct([video_id])[0], video_id, study_uid
        from echosearch.video import EchoClip, preprocess_frames, read_clip

        prep = archive.space.info.preprocessing or {}
        clip = (
            target
            if isinstance(target, EchoClip)
            else read_clip(
                Path(target),
                sampling=prep.get("sampling", "uniform:16"),
                mask_sector=prep.get("mask_sector", True),
            )
        )
        with archive.db.session() as s:
            known = q.indexed_video_by_sha256(s, clip.meta.sha256)
            if known is not None and known.id in archive.index:
                study_uid = known.study.study_uid if known.study else None
                return archive.index.reconstruct([known.id])[0], known.id, study_uid
        encoder = archive.encoder
        cfg = encoder.preprocess_cfg
        x = preprocess_frames(clip.frames, size=cfg["size"], mean=cfg["mean"], std=cfg["std"])
        _, clip_emb = encoder.encode_clips([x])
        return clip_emb.numpy()[0], None, clip.meta.study_instance_uid

    def interpret(self, text: str):
        """How a free-text query is read for this space's model (an ``Interpretation``)."""
        from echosearch.query import interpret

        text = (text or "").strip()
        if not text:
            raise UsageError("the query is empty")
        plan = interpret(text, self.lexicon, self.archive.encoder.tokenizer)
        titles = self._titles()
        for cond in [*plan.filters, *plan.preferences]:
            cond.display = titles.get(cond.task or "")
        return plan

    def plan_vector(self, plan) -> tuple[np.ndarray, list[str]]:
        """The query vector of an interpretation: its weighted phrases minus its negatives."""
        encoder = self.archive.encoder
        notes = []
        if plan.corrections:
            notes.append("read " + ", ".join(f"'{a}' as '{b}'" for a, b in plan.corrections.items()))
        if plan.unmatched:
            notes.append("not understood: " + ", ".join(plan.unmatched))
        notes += plan.notes
        dim = self.archive.space.info.dim
        if not plan.phrases and not plan.negatives:
            if plan.filters or plan.preferences:
                return np.zeros(dim, dtype=np.float32), notes
            if getattr(encoder.tokenizer, "phrases", None) is not None:
                miss = NoTemplateMatch(plan.query, self.suggest(plan.query))
                miss.notes = notes
                raise miss
            notes.append("no clinical term recognised: searched as typed")
            return self.encode_texts([plan.query])[0], notes
        texts = [p.text for p in plan.phrases] + [p.text for p in plan.negatives]
        weights = np.array([p.weight for p in plan.phrases] + [-p.weight for p in plan.negatives], np.float32)
        vec = weights @ self.encode_texts(texts)
        norm = float(np.linalg.norm(vec))
        return (vec / norm if norm > 0 else vec).astype(np.float32), notes

    def suggest(self, query: str, n: int = 5) -> list[str]:
        """The vocabulary phrases nearest a free-text query, filled so they can be searched as they are.

        Ranked by shared words first (a clinician's words are usually in the phrase, after the
        lexicon's abbreviations and synonyms are expanded), then by character similarity.
        """
        lexicon = [fill_slots(p) for p in self.lexicon.phrases()]
        vocabulary = getattr(self.archive.encoder.tokenizer, "phrases", None) or []
        phrases = [*lexicon, *(fill_slots(p) for p in vocabulary)]
        # Nothing alike: a few phrases of different findings, so the user still sees what works.
        return (
            suggest_phrases(query, phrases, n, self.lexicon.spelled_out)
            or list(dict.fromkeys(lexicon))[:: max(1, len(lexicon) // n)][:n]
        )


def suggest_phrases(
    query: str, phrases: Sequence[str], n: int = 5, spelled_out: Callable[[str], Sequence[str]] | None = None
) -> list[str]:
    """Rank phrases for a query: the share of the query's words a phrase contains first (a word also
    counts where the phrase spells it out: ``spelled_out("lv")`` -> "left ventricle", ...), then
    character similarity."""
    words = _words(query)
    if not words or not phrases:
        return []
    text = " ".join(sorted(words))
    forms = {w: [f.lower() for f in (spelled_out(w) if spelled_out else ())] for w in words}

    def rank(phrase: str) -> tuple[float, float]:
        pwords = _words(phrase)
        lower = " ".join(re.findall(r"[a-z0-9]+", phrase.lower()))
        found = sum(1 for w in words if w in pwords or any(f in lower for f in forms[w]))
        return found / len(words), difflib.SequenceMatcher(None, text, " ".join(sorted(pwords))).ratio()

    unique = list(dict.fromkeys(p.strip() for p in phrases))
    scored = sorted(((rank(p), p) for p in unique), key=lambda item: item[0], reverse=True)
    return [p for (overlap, ratio), p in scored[:n] if overlap > 0 or ratio > 0.3]


def fill_slots(phrase: str) -> str:
    """A vocabulary phrase with its slots filled by a typical value, so a suggestion can be searched
    as it is: a number before % or a unit, a severity word elsewhere."""
    out = phrase.strip()
    while SLOT in out:
        after = out.split(SLOT, 1)[1][:4]
        value = "35" if after[:1] in ("%", "M", "C") or after.startswith(" BPM") else "MODERATE"
        out = out.replace(SLOT, value, 1)
    return out


_NOT_RE = re.compile(r"\b(?:not|no|without)\s+", re.IGNORECASE)


def split_negatives(
    texts: Sequence[tuple[str, float]], negatives: Sequence[str]
) -> tuple[list[tuple[str, float]], list[str]]:
    """For a literal search: split "A4C, not pacer" into a positive text and a negative one."""
    out_texts: list[tuple[str, float]] = []
    out_neg = list(negatives)
    for text, weight in texts:
        parts = [p.strip() for p in re.split(r"[,;]", text) if p.strip()]
        positives = []
        for part in parts:
            m = _NOT_RE.match(part)
            if m:
                out_neg.append(part[m.end() :])
            else:
                positives.append(part)
        if positives and len(positives) < len(parts):
            out_texts.append((", ".join(positives), weight))
        elif positives:
            out_texts.append((text, weight))
    return out_texts, out_neg


def as_video_id(target: Any) -> int | None:
    """A video id given as an int or a string of digits (that is not also a file's name)."""
    if isinstance(target, (int, np.integer)):
        return int(target)
    if isinstance(target, str) and target.strip().isdigit() and not Path(target).exists():
        return int(target)
    return None


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 1}
