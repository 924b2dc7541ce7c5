"""Serve a trained model over HTTP: :func:`create_app` builds the FastAPI app, :func:`run`
serves it under uvicorn with the connection deadlines uvicorn lacks."""

from earmark.serve.app import ServeSettings, create_app
from earmark.serve.recordings import Recordings
from earmark.serve.server import exposure_warning, is_loopback, run, server_config

__all__ = [
    "Recordings",
    "ServeSettings",
    "create_app",
    "exposure_warning",
    "is_loopback",
    "run",
    "server_config",
]
