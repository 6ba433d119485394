"""``echosearch demo``: synthesise an archive, index it with the demo model, start the UI."""

from __future__ import annotations

import click

from echosearch.cli.common import data_option
from echosearch.cli.main import cli


@cli.command()
@data_option
@click.option("--patients", default=40, show_default=True, help="Patients in the synthetic archive.")
@click.option("--no-ui", is_flag=True, help="Stop after indexing instead of starting the UI.")
def demo(data: str | None, patients: int, no_ui: bool) -> None:
    """Run the whole product offline on a synthetic archive (arrives with the demo model)."""
    click.echo(
        "The demo arrives with the bundled demo model (echosearch-demo). "
        "Until then try: echosearch tokenize 'SEVERE DILATED LEFT VENTRICLE.' --vocab V --wordpiece W"
    )
