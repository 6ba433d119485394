"""``echosearch interpret TEXT``: how a free-text query is understood, without searching."""

from __future__ import annotations

import click

from echosearch.cli.common import data_option, emit_json, json_option
from echosearch.cli.main import cli
from echosearch.cli.tokenize import _model_tokenizer
from echosearch.errors import EchosearchError, UsageError
from echosearch.query import interpret as interpret_text
from echosearch.query import load_lexicon
from echosearch.query.lexicon import lexicon_for
from echosearch.tokenizers import TemplateTokenizer


def _print(doc: dict) -> None:
    click.echo(f"lexicon:   {doc['lexicon']}")
    click.echo(doc["summary"])
    for p in doc["phrases"]:
        click.echo(f"  phrase    {p['weight']:.2f}  {p['text']}")
    for p in doc["negatives"]:
        click.echo(f"  negative  {p['weight']:.2f}  {p['text']}")
    for c in doc["filters"]:
        click.echo(f"  filter    {c['text']}")
    for c in doc["preferences"]:
        click.echo(f"  prefer    {c['text']} (weight {c['weight']:g})")
    for typo, word in doc["corrections"].items():
        click.echo(f"  read      '{typo}' as '{word}'")
    if doc["unmatched"]:
        click.echo("  not understood: " + ", ".join(doc["unmatched"]))
    for note in doc["notes"]:
        click.echo(f"note: {note}", err=True)


@cli.command()
@click.argument("text")
@click.option(
    "--model",
    "model",
    help="Read TEXT for this model (registry name or bundle folder; default: the registry's default).",
)
@click.option(
    "--vocab", type=click.Path(dir_okay=False), help="Read TEXT for a template vocabulary file instead."
)
@click.option(
    "--lexicon",
    "lexicon",
    help="Lexicon name (configs/lexicon/NAME.yaml) or YAML file; default: the model's.",
)
@data_option
@json_option
def interpret(text, model, vocab, lexicon, data, as_json) -> None:
    """Show how free TEXT is understood: phrases, negatives, filters, label preferences, unknown words."""
    from echosearch.models.registry import default_model

    if model and vocab:
        raise click.UsageError("give either --model or --vocab, not both")
    if vocab:
        tokenizer, name = TemplateTokenizer.from_files(None, vocab), ""
    else:
        name = model or default_model()
        try:
            tokenizer, _ = _model_tokenizer(name)
        except EchosearchError as exc:  # not pulled here: its lexicon still says what the words mean
            click.echo(f"note: {exc}; phrases are not checked against its vocabulary", err=True)
            tokenizer = None
    try:
        lex = load_lexicon(lexicon) if lexicon else lexicon_for(name, tokenizer)
    except UsageError as exc:
        raise click.BadParameter(str(exc), param_hint="--lexicon") from None
    doc = interpret_text(text, lex, tokenizer).to_dict()
    emit_json(doc) if as_json else _print(doc)
