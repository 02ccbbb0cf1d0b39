"""The command-line client: `python -m app.client` (see `cli`), over `transport`, with the
read subcommands' tables in `reads`."""
