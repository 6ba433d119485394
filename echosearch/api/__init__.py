"""The REST API (``echosearch serve``): the Engine over HTTP, under ``/api/v1``, with per-account
tokens and roles (:mod:`echosearch.accounts`). ``create_app(data_dir)`` makes the FastAPI app."""

from echosearch.api.app import create_app
from echosearch.api.state import ApiSettings

__all__ = ["ApiSettings", "create_app"]
