"""The UI's pages, one module each; each exposes ``render(engine)``."""
