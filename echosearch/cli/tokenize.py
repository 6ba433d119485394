"""``echosearch tokenize TEXT``: show what the model reads of a query or report, and why it matches."""

from __future__ import annotations

import click

from echosearch.cli.common import data_option, emit_json, json_option
from echosearch.cli.main import cli
from echosearch.errors import UsageError
from echosearch.tokenizers import ClipBPETokenizer, Explanation, TemplateTokenizer, Tokenizer, load_tokenizer


def _model_tokenizer(name: str) -> tuple[Tokenizer, str]:
    """The tokenizer of a registry model or bundle folder (needs echosearch.models)."""
    try:
        from echosearch.models import resolve_bundle
    except ImportError as exc:
        raise UsageError(
            "--model needs the model registry (echosearch.models); use --vocab/--wordpiece"
        ) from exc
    bundle = resolve_bundle(name)
    spec = bundle.tokenizer_spec
    tokenizer = load_tokenizer(spec, base_dir=bundle.path, context_length=bundle.context_length)
    return tokenizer, f"{spec.get('kind')} (model {name})"


def _pick(
    vocab: str | None, wordpiece: str | None, model: str | None, context_length: int
) -> tuple[Tokenizer, str]:
    if model and (vocab or wordpiece):
        raise click.UsageError("give either --model or --vocab/--wordpiece, not both")
    if wordpiece and not vocab:
        raise click.UsageError("--wordpiece needs --vocab (the template vocabulary)")
    if model:
        return _model_tokenizer(model)
    if vocab:
        return TemplateTokenizer.from_files(wordpiece, vocab, context_length), f"template ({vocab})"
    return ClipBPETokenizer(context_length), "clip-bpe (EchoCLIP's CLIP BPE)"


def _print(ex: Explanation, described: str) -> None:
    padding = sum(1 for i in ex.ids if i == 0)
    click.echo(f"tokenizer: {described}")
    click.echo(f"cleaned:   {ex.cleaned.strip()}")
    if ex.phrases is not None:
        click.echo(f"phrases:   {len(ex.phrases)} matched")
        for k, phrase in enumerate(ex.phrases, start=1):
            click.echo(f"  {k:>3}. {phrase}")
        for fragment in ex.unmatched:
            click.echo(f"  unmatched (ignored): {fragment}")
    click.echo("tokens:    " + " | ".join(ex.tokens))
    click.echo("ids:       " + " ".join(str(i) for i in ex.ids if i != 0) + f"  (+{padding} padding)")
    if ex.truncated:
        click.echo(f"note: cut to {len(ex.ids)} tokens; the model does not see the rest")
    if ex.matched_nothing:
        click.echo("note: nothing matched; the model sees an empty text", err=True)


@cli.command()
@click.argument("text")
@click.option("--vocab", type=click.Path(dir_okay=False), help="Template vocabulary (one phrase per line).")
@click.option(
    "--wordpiece", type=click.Path(dir_okay=False), help="WordPiece base file (default: a blank one)."
)
@click.option("--model", "model", help="Use this model's tokenizer (registry name or bundle folder).")
@click.option("--context-length", default=77, show_default=True, help="Token ids per text.")
@data_option
@json_option
def tokenize(
    text: str,
    vocab: str | None,
    wordpiece: str | None,
    model: str | None,
    context_length: int,
    data: str | None,
    as_json: bool,
) -> None:
    """Show the cleaned text, tokens and ids of TEXT (default tokenizer: CLIP BPE)."""
    tokenizer, described = _pick(vocab, wordpiece, model, context_length)
    explanation = tokenizer.explain(text)
    if as_json:
        emit_json({"tokenizer": described, **explanation.to_dict()})
    else:
        _print(explanation, described)
