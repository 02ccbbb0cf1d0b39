"""What `make run` and `make test` bring up on this machine: a private PostgreSQL
cluster, and the supervisor that keeps it, gunicorn and the shim running.
Tooling, not the exchange: the service runs the same against any PostgreSQL."""
