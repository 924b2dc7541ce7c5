"""Serve a trained model over HTTP: :func:`create_app` builds the FastAPI app."""

from earmark.serve.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
