"""The CLI's commands, in the order `--help` lists them. Add a module here to add a command."""

from . import audit, campaign, demo, download, export, grade, ingest, report, run_model, serve_env, show, stats, upgrade

COMMANDS = [ingest, download, stats, show, export, demo, grade, run_model, report, audit, campaign, serve_env, upgrade]
