"""The bottom layer, imported by every other: where things live (`config`), the named errors (`errors`) and the
statistics every summary uses (`metrics`). Imports nothing of the project."""
