"""The CLI's commands, in the order `--help` lists them. Add a module here to add a command."""

from . import download, ingest, show, stats

COMMANDS = [ingest, download, stats, show]
