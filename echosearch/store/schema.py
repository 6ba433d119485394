"""The metadata schema: SQLAlchemy 2.0 ORM models for everything that is not a vector.

Portable column types only (String, Text, Integer, BigInteger, Float, Date, DateTime, JSON), so the
same models and migrations run on SQLite (the default data dir) and PostgreSQL (large sites). Every
string column is one of :mod:`echosearch.store.types` (``SafeString``/``SafeText``/``SafeJSON``): what
is bound to it is made storable there (no NUL, no lone surrogate, cut to its length), so a fuzzed
DICOM header or an odd file name cannot fail a batch on PostgreSQL, and no writer has to remember.
Patient IDs and accession numbers are never stored in the clear: only their keyed hashes
(``echosearch.privacy.keyed_hash``). Any change here needs a new Alembic revision in
``echosearch/store/migrations/versions`` (``tests/test_store.py`` fails when they disagree).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from echosearch.store.types import SafeJSON, SafeString, SafeText

# Explicit constraint names: Alembic (and SQLite batch migrations) need them to alter constraints later.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Video.status values.
STATUS_PENDING = "pending"
STATUS_INDEXED = "indexed"
STATUS_FAILED = "failed"
STATUS_REMOVED = "removed"


def utcnow() -> dt.datetime:
    """Timezone-aware now (UTC); stored in DateTime(timezone=True) columns."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: SafeJSON, dt.datetime: DateTime(timezone=True)}


class Patient(Base):
    """One patient, known only by the keyed hash of their MRN."""

    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(SafeString(64, key=True), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    studies: Mapped[list[Study]] = relationship(back_populates="patient")


class Study(Base):
    """One echo exam (DICOM study)."""

    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_uid: Mapped[str] = mapped_column(SafeString(128, key=True), unique=True)
    accession_key: Mapped[str | None] = mapped_column(SafeString(64, key=True), index=True)
    study_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"), index=True)
    description: Mapped[str | None] = mapped_column(SafeString(256))
    patient: Mapped[Patient | None] = relationship(back_populates="studies")
    videos: Mapped[list[Video]] = relationship(back_populates="study")
    reports: Mapped[list[Report]] = relationship(back_populates="study", cascade="all, delete-orphan")


class Video(Base):
    """One clip (DICOM instance or AVI/MP4 file). Its ``id`` is its FAISS id in every space."""

    __tablename__ = "videos"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_uid: Mapped[str | None] = mapped_column(SafeString(128, key=True), index=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="SET NULL"), index=True)
    series_uid: Mapped[str | None] = mapped_column(SafeString(128, key=True))
    path: Mapped[str] = mapped_column(SafeString(1024, key=True), unique=True)
    sha256: Mapped[str | None] = mapped_column(SafeString(64, key=True), index=True)
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime: Mapped[float | None] = mapped_column(Float)
    frames: Mapped[int | None] = mapped_column(Integer)
    fps: Mapped[float | None] = mapped_column(Float)
    rows: Mapped[int | None] = mapped_column(Integer)
    cols: Mapped[int | None] = mapped_column(Integer)
    manufacturer: Mapped[str | None] = mapped_column(SafeString(128), index=True)
    model: Mapped[str | None] = mapped_column(SafeString(128))
    view: Mapped[str | None] = mapped_column(SafeString(32), index=True)
    status: Mapped[str] = mapped_column(SafeString(16), default=STATUS_PENDING, index=True)
    indexed_at: Mapped[dt.datetime | None]
    thumbnail_path: Mapped[str | None] = mapped_column(SafeString(1024))
    preview_path: Mapped[str | None] = mapped_column(SafeString(1024))
    study: Mapped[Study | None] = relationship(back_populates="videos")
    labels: Mapped[list[Label]] = relationship(back_populates="video", cascade="all, delete-orphan")


class Report(Base):
    """A study's report: the original text and the cleaned text that is embedded."""

    __tablename__ = "reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(SafeText)
    cleaned_text: Mapped[str | None] = mapped_column(SafeText)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    study: Mapped[Study] = relationship(back_populates="reports")


class EmbeddingSpace(Base):
    """One embedding space (one model, one kind of item): its FAISS index is ``spaces/<name>/``."""

    __tablename__ = "embedding_spaces"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(SafeString(128, key=True), unique=True)
    kind: Mapped[str] = mapped_column(SafeString(16), default="video")  # "video" or "report"
    model_name: Mapped[str] = mapped_column(SafeString(128))
    model_version: Mapped[str | None] = mapped_column(SafeString(64))
    preprocessing: Mapped[dict[str, Any] | None]
    dim: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Label(Base):
    """A zero-shot label of one video for one task, computed in one space (model)."""

    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("video_id", "space_id", "task"),
        Index("ix_labels_task_value", "task", "value"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("embedding_spaces.id", ondelete="CASCADE"))
    task: Mapped[str] = mapped_column(SafeString(64, key=True))  # "TASK.probability" names stay apart
    value: Mapped[float | None] = mapped_column(Float)
    category: Mapped[str | None] = mapped_column(SafeString(64))  # categorical tasks: the class name
    video: Mapped[Video] = relationship(back_populates="labels")


class IndexRun(Base):
    """One run of the indexer: when, with which arguments, and what it counted."""

    __tablename__ = "index_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(SafeString(16), default="running")
    counts: Mapped[dict[str, Any] | None]
    args: Mapped[dict[str, Any] | None]


class SourceRoot(Base):
    """A folder of the archive registered by ``echosearch index`` (or ``echosearch sources add``).

    Clips under it are stored as ``root:<id>/<path below the root>`` (:mod:`echosearch.sources`), so
    the absolute location of the archive is written once, here, and a moved archive mount is one
    update (``echosearch sources move``). ``path`` is the resolved absolute folder (as
    :func:`echosearch.paths.storable_path` writes it)."""

    __tablename__ = "source_roots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(SafeString(1024, key=True), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Failure(Base):
    """A file the indexer could not read; kept so a rerun skips it until it changes."""

    __tablename__ = "failures"
    __table_args__ = (UniqueConstraint("path", "sha256"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(SafeString(1024, key=True), index=True)
    sha256: Mapped[str | None] = mapped_column(SafeString(64, key=True))
    reason: Mapped[str] = mapped_column(SafeText)
    kind: Mapped[str | None] = mapped_column(SafeString(64))
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    """Who searched for what, and when (clinical systems must be able to answer that)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    who: Mapped[str | None] = mapped_column(SafeString(128))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    action: Mapped[str] = mapped_column(SafeString(64))
    query: Mapped[dict[str, Any] | None]


ROLES = ("viewer", "indexer", "admin")  # each may do what the ones before it may


class User(Base):
    """A person (or a system) that uses the UI or the API: a name, a role and, for the UI, a password.

    Only an scrypt hash of the password is stored. ``failed_logins`` and ``locked_until`` throttle
    password guessing for the account across every UI process; ``disabled_at`` ends every login and
    every token of the account at once."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(SafeString(64, key=True), unique=True)
    role: Mapped[str] = mapped_column(SafeString(16))
    password_hash: Mapped[str | None] = mapped_column(SafeString(256))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[dt.datetime | None]
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None]
    last_login_at: Mapped[dt.datetime | None]
    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete-orphan")


class ApiToken(Base):
    """A bearer token of the API, stored as the SHA-256 of the token (the token itself is shown once).

    A token is 256 random bits, so a plain hash is enough (no salt, no slow hash: nothing to guess)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(SafeString(64, key=True), unique=True)
    prefix: Mapped[str] = mapped_column(SafeString(16))  # the token's first characters, to tell tokens apart
    label: Mapped[str | None] = mapped_column(SafeString(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]
    user: Mapped[User] = relationship(back_populates="tokens")


class SiteSetting(Base):
    """Facts about the data dir itself (``site_key_fingerprint``: which site key its hashes use)."""

    __tablename__ = "site_settings"
    name: Mapped[str] = mapped_column(SafeString(64, key=True), primary_key=True)
    value: Mapped[str] = mapped_column(SafeText)
