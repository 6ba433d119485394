"""The Ray engine (``echosearch index --engine ray``): the same reader, mapper and writer, spread over a
Ray cluster. It only decides where each part runs:

- readers (:func:`echosearch.indexer.reader.read_one`) run as Ray tasks, one per clip, on any node's
  CPUs. Each returns two objects: the small read result (hash, SOP UID, metadata, or the failure),
  which comes to the driver, and the frames, which stay in the object store until an encoder takes
  them: frames never travel through the driver;
- encoders (:class:`echosearch.indexer.mapper.Mapper`) are a pool of Ray actors, one model each, on
  a GPU where ``--gpus-per-encoder`` asks for one, else on CPU (bf16 where the CPU has it). Embedded
  clips come back without their frames;
- the writer stays in the driver, the one process that writes the data dir and the database, so the
  crash-safe write order, dedupe and failure records are the local engine's own.

Back-pressure: at most ``max_in_flight`` reader tasks and ``2 x encoders`` encoder calls are
outstanding at any time, so memory stays flat on any archive. A reader task whose worker dies is
retried by Ray, then recorded as a failure of its file (as the local engine's crashed jobs are). An
encoder actor that dies fails its outstanding calls; those batches go to a fresh actor, and since
only the driver writes, and only what came back, no clip is lost and none written twice. Killing
the driver kills the run like a local one: the next run repairs and finishes the rest.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from echosearch.errors import UsageError
from echosearch.indexer.distributor import CrashedJob
from echosearch.indexer.reader import ReadResult

log = logging.getLogger(__name__)


def import_ray():  # noqa: ANN201
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray needs Ray: pip install 'echosearch[ray]'") from None
    return ray


def connect(address: str | None) -> None:
    """Join the cluster at ``address`` (``auto``, ``ray://HOST:10001``), or start a local one
    (``None``); a session that is already connected (a test's ``ray.init``) is reused."""
    ray = import_ray()
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local Ray cluster"
        raise UsageError(f"cannot connect to {where}: {' '.join(str(exc).split())[:300]}") from None


def node_name() -> str:
    """This Ray node, as the run's summary names it: its IP and the start of its node id (two nodes
    on one host differ by the id)."""
    ray = import_ray()
    return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"


def _read_remote(fn: Callable, job: Any, cfg: Any) -> tuple[ReadResult, Any]:
    """Runs on a Ray worker: read one clip; the frames go back as their own object."""
    result = fn(job, cfg)
    result.extra["node"] = node_name()
    frames, result.frames = result.frames, None
    result.extra["num_frames"] = 0 if frames is None else int(frames.shape[0])
    return result, frames


class RayDistributor:
    """The :class:`~echosearch.indexer.distributor.Distributor` of the Ray engine: readers as tasks.

    Yields read results whose frames stay in Ray's object store (``extra["frames_ref"]``)."""

    def __init__(self, address: str | None = None, max_in_flight: int | None = None) -> None:
        self.address = address
        self.max_in_flight = max_in_flight
        self._task = None
        self.nodes: Counter[str] = Counter()  # clips read per node

    def start(self) -> None:
        ray = import_ray()
        connect(self.address)
        if self._task is None:
            self._task = ray.remote(num_returns=2, num_cpus=1, max_retries=2)(_read_remote)
        if self.max_in_flight is None:
            self.max_in_flight = max(4, 2 * int(ray.cluster_resources().get("CPU", 1)))

    def map_unordered(self, fn: Callable, jobs: Iterable[Any], cfg: Any) -> Iterator[Any]:
        ray = import_ray()
        self.start()
        cfg_ref = ray.put(cfg)
        pending: dict[Any, tuple[Any, Any]] = {}  # meta ref -> (job, frames ref)
        it = iter(jobs)
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.max_in_flight:
                job = next(it, None)
                if job is None:
                    exhausted = True
                    break
                meta_ref, frames_ref = self._task.remote(fn, job, cfg_ref)
                pending[meta_ref] = (job, frames_ref)
            if not pending:
                return
            [done], _ = ray.wait(list(pending), num_returns=1)
            job, frames_ref = pending.pop(done)
            try:
                result = ray.get(done)
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.RayTaskError) as exc:
                yield CrashedJob(job, f"the Ray reader died while reading this file: {type(exc).__name__}")
                continue
            result.extra["frames_ref"] = frames_ref
            self.nodes[result.extra.pop("node", "?")] += 1
            yield result

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class EncoderSpec:
    """What each encoder actor loads: the model and the run's zero-shot tasks."""

    model: str
    device: str
    precision: str
    batch_size: int | None
    tasks: Sequence[Any]
    thresholds: dict[str, float]
    threads: int = 1


class _EncoderActor:
    """One model in one Ray actor: a :class:`Mapper` over frames handed in as object refs."""

    def __init__(self, spec: EncoderSpec) -> None:
        from echosearch.indexer.mapper import Mapper
        from echosearch.models import load_model

        encoder = load_model(
            spec.model, device=spec.device, precision=spec.precision, batch_size=spec.batch_size,
            threads=spec.threads,
        )  # fmt: skip
        self.mapper = Mapper(encoder, spec.tasks, spec.thresholds)

    def embed(self, reads: list[ReadResult], *frames) -> list:  # noqa: ANN002
        reads = [replace(r, frames=f) for r, f in zip(reads, frames, strict=True)]
        out = self.mapper.embed(reads)
        for item in out:  # the frames stay here: only embeddings and labels go back
            item.read = replace(item.read, frames=None)
        return node_name(), out


class RayEmbedding:
    """The encoder actor pool: ``submit`` batches of read clips, collect embedded ones with ``ready``."""

    def __init__(self, spec: EncoderSpec, encoders: int = 1, gpus_per_encoder: float = 0.0) -> None:
        ray = import_ray()
        self.spec = spec
        self.gpus = gpus_per_encoder
        self.limit = 2 * encoders
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if encoders * spec.threads >= cpus:  # the readers would never get a CPU: a silent hang
            raise UsageError(
                f"{encoders} encoders x {spec.threads} CPUs leave none of the cluster's {cpus} CPUs to "
                "the readers: use fewer --encoders or --cpus-per-encoder"
            )
        self._cls = ray.remote(num_cpus=spec.threads, num_gpus=gpus_per_encoder)(_EncoderActor)
        self.actors = [self._new_actor() for _ in range(encoders)]
        self._next = 0
        self._calls: dict[Any, tuple[Any, list[ReadResult]]] = {}  # ref -> (actor, batch)
        self._done: deque[list] = deque()
        self.retried = 0
        self.nodes: Counter[str] = Counter()  # clips embedded per node

    def _new_actor(self):  # noqa: ANN202
        return self._cls.remote(self.spec)

    def submit(self, reads: Sequence[ReadResult]) -> None:
        """Send a batch to the next actor, after waiting for a call to finish while the pool is full."""
        while len(self._calls) >= self.limit:
            self._collect(block=True)
        self._submit_to(self.actors[self._next % len(self.actors)], list(reads))
        self._next += 1

    def _submit_to(self, actor, reads: list[ReadResult]) -> None:  # noqa: ANN001
        refs = [r.extra["frames_ref"] for r in reads]
        bare = [replace(r, extra={k: v for k, v in r.extra.items() if k != "frames_ref"}) for r in reads]
        self._calls[actor.embed.remote(bare, *refs)] = (actor, reads)

    def _collect(self, block: bool) -> None:
        ray = import_ray()
        if not self._calls:
            return
        calls = list(self._calls)
        done, _ = ray.wait(calls, num_returns=1 if block else len(calls), timeout=None if block else 0)
        for ref in done:
            actor, reads = self._calls.pop(ref)
            try:
                node, items = ray.get(ref)
            except ray.exceptions.RayActorError:
                self._replace(actor)
                log.warning("an encoder actor died; its %d clips go to another", len(reads))
                self.retried += len(reads)
                self._submit_to(self.actors[self._next % len(self.actors)], reads)
                self._next += 1
                continue
            self.nodes[node] += len(items)
            self._done.append(items)

    def _replace(self, dead) -> None:  # noqa: ANN001
        if dead in self.actors:
            self.actors[self.actors.index(dead)] = self._new_actor()

    def ready(self, wait_all: bool = False) -> Iterator[list]:
        """Embedded batches finished so far (all outstanding ones with ``wait_all``)."""
        self._collect(block=False)
        while wait_all and self._calls:
            self._collect(block=True)
        while self._done:
            yield self._done.popleft()

    def close(self) -> None:
        ray = import_ray()
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
