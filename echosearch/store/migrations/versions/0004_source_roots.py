"""Source roots: clip paths stored relative to a registered archive folder (PHI at rest).

Archives are often laid out by MRN or accession folders, so an absolute clip path is patient data.
From this revision on, ``videos.path`` and ``failures.path`` of a local file are
``root:<id>/<path below the root>`` (:mod:`echosearch.sources`), and ``index_runs.args`` names the
folders by root id instead of by path.

Existing rows are not rewritten here: which folder was the root of an absolute path is not known to
a migration (the command lines of old runs may be relative to a working directory long gone). An
absolute ``videos.path`` keeps resolving as it is, and the next ``echosearch index`` (or
``echosearch sources add``) of a folder rewrites the rows under it into root keys
(:func:`echosearch.sources.register_root`). What old runs stored in ``index_runs.args`` as paths
in the clear is dropped here (replaced by a marker), since nothing needs it back.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NOT_KEPT = "<path not kept (migration 0004)>"
_REMOTE = ("dicomweb+http://", "dicomweb+https://", "dicom://")


def _redacted(args: dict) -> dict | None:
    """``args`` with local paths replaced by :data:`NOT_KEPT`; None when there was none."""
    out = dict(args)
    paths = out.get("paths")
    if isinstance(paths, list):
        out["paths"] = [p if isinstance(p, str) and p.startswith(_REMOTE) else NOT_KEPT for p in paths]
    if out.get("reports"):
        out["reports"] = NOT_KEPT
    return out if out != args else None


def upgrade() -> None:
    op.create_table(
        "source_roots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_roots")),
        sa.UniqueConstraint("path", name=op.f("uq_source_roots_path")),
    )
    if context.is_offline_mode():  # rendering DDL only: there are no rows to read
        return
    runs = sa.table("index_runs", sa.column("id", sa.Integer), sa.column("args", sa.JSON))
    bind = op.get_bind()
    for run_id, args in bind.execute(sa.select(runs.c.id, runs.c.args)).all():
        new = _redacted(args) if isinstance(args, dict) else None
        if new is not None:
            bind.execute(runs.update().where(runs.c.id == run_id).values(args=new))


def downgrade() -> None:
    op.drop_table("source_roots")
