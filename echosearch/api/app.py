"""The app factory: ``create_app(data_dir)`` -> a FastAPI app serving one data dir under ``/api/v1``.

One Engine is opened when the app is made (a data dir without an index is refused then, not on the
first request) and serves every request: FastAPI runs the endpoints, all plain functions, in its
thread pool; the Engine's database sessions are per call, its model loads once under a lock, and
each request names its caller for the audit log in its own thread (``engine.who``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from echosearch import __version__
from echosearch.accounts import Accounts
from echosearch.api import errors
from echosearch.api.guard import Guard
from echosearch.api.responses import ApiJSON
from echosearch.api.routes import archive, clips, health, jobs, search, studies
from echosearch.api.shapes import PREFIX
from echosearch.api.state import ApiSettings, ApiState
from echosearch.errors import EchosearchError
from echosearch.search import Engine

log = logging.getLogger("echosearch.api")

UPLOAD_PATHS = (f"{PREFIX}/similar",)
DOCS_ASSETS = f"{PREFIX}/docs/assets"

DESCRIPTION = """Semantic search over an echocardiogram archive: the `echosearch` Engine over HTTP.

Every endpoint but `/health` needs `Authorization: Bearer TOKEN` (`echosearch tokens create USER`).
Roles: **viewer** searches; **indexer** may also start `/index` and `/relabel` jobs; **admin** also
sees clip file paths, `/failures` and `/audit`. Errors are `{"error", "message", "parameter"?}`.
Results have the JSON shape of the CLI's `--json`, paged with `k` and `offset`.
"""


def create_app(
    data_dir: str | Path | None = None,
    *,
    space: str | None = None,
    settings: ApiSettings | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """A FastAPI app on ``data_dir`` (or on an open ``engine``, which the caller then closes)."""
    settings = settings or ApiSettings()
    owned = engine is None
    engine = engine or Engine.open(data_dir, space=space)
    try:
        if settings.preload_model:
            _warm(engine)
        state = ApiState(engine=engine, accounts=Accounts(engine.db), settings=settings)
        engine.audit.write_in_background()  # a request does not wait for its audit row's commit
    except BaseException:
        if owned:
            engine.close()
        raise

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.jobs.stop()
        engine.audit.flush()
        if owned:
            engine.close()

    app = FastAPI(
        title="echosearch",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # served below from local assets: a hospital network often has no internet
        openapi_url=f"{PREFIX}/openapi.json",
        redoc_url=None,
        default_response_class=ApiJSON,
        lifespan=lifespan,
    )
    app.state.api = state
    _serve_docs(app)
    errors.install(app)
    for module in (health, search, clips, studies, archive, jobs):
        app.include_router(module.router)  # each router carries the /api/v1 prefix (the access log's routes)
    app.add_middleware(
        Guard,
        max_request_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        upload_paths=UPLOAD_PATHS,
        public_paths=(f"{PREFIX}/docs", app.openapi_url),
    )
    return app


#: The environment variable through which ``serve --workers N`` hands each worker its configuration.
CONFIG_ENV = "ECHOSEARCH_API_CONFIG"


def worker_config(data_dir: str | Path | None, space: str | None, settings: ApiSettings) -> str:
    """The JSON a worker process reads back in :func:`app_from_environment`."""
    fields = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()}
    fields["index_roots"] = [str(p) for p in settings.index_roots]
    return json.dumps({"data_dir": str(data_dir) if data_dir else None, "space": space, "settings": fields})


def app_from_environment() -> FastAPI:
    """The app of one worker of ``echosearch serve --workers N`` (uvicorn imports and calls this in
    each worker process), configured by :data:`CONFIG_ENV`."""
    config = json.loads(os.environ[CONFIG_ENV])
    fields = dict(config["settings"])
    fields["index_roots"] = tuple(Path(p) for p in fields.get("index_roots", ()))
    if fields.get("runtime_path"):
        fields["runtime_path"] = Path(fields["runtime_path"])
    logging.getLogger("echosearch.api").setLevel(logging.INFO)
    logging.getLogger("echosearch.api.access").setLevel(logging.INFO)
    return create_app(config["data_dir"], space=config["space"], settings=ApiSettings(**fields))


def _serve_docs(app: FastAPI) -> None:
    """Swagger UI at ``/api/v1/docs`` with its JavaScript and CSS from the installed
    ``swagger-ui-bundle`` package, not from a CDN (FastAPI's default), which a PACS network or an
    air-gapped research server cannot reach: the page would stay blank."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get(f"{PREFIX}/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="echosearch API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )


def _warm(engine: Engine) -> None:
    """Load the model and what every text query reads once, before the first request (a text
    search must not pay for it, nor several threads load it at once)."""
    try:
        engine.encoder  # noqa: B018
        engine.lexicon  # noqa: B018
        engine.label_catalog()
    except EchosearchError as exc:
        log.warning("model not available, text and upload queries will fail: %s", exc)
