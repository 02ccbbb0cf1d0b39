"""The WSGI entry point: `gunicorn wsgi:app`. Reads the environment, nothing else."""

from app.config import Config
from app.web.app import create_app

app = create_app(Config.from_env())
