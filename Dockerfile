# One image for every tier: the web service (the default command), the legacy
# TCP shim (`python -m app.shim`); the `load` stage adds locust on top.
FROM python:3.11-slim AS service

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/exchange

# The pinned dependencies in a layer of their own: rebuilt only when they change.
COPY requirements.txt ./
RUN python -m pip install -r requirements.txt

COPY wsgi.py gunicorn.conf.py ./
COPY app/ app/

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exchange
USER exchange

# Listen on every interface of the container; metrics files in the container's /tmp.
ENV EXCHANGE_BIND=0.0.0.0:8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/exchange-metrics
EXPOSE 8000 12345

CMD ["python", "-m", "gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"]


# Load tests: locust at the version requirements-dev.txt pins, and the locustfile.
FROM service AS load
USER root
COPY requirements-dev.txt ./
RUN python -m pip install "$(grep -i '^locust==' requirements-dev.txt)"
COPY locustfile.py ./
USER exchange
EXPOSE 8089
CMD ["locust", "-f", "locustfile.py", "--host", "http://app:8000"]


# The default target: the service image, without locust.
FROM service
