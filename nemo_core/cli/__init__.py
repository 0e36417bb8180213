"""The command line on top of the core: `main` parses and dispatches, `commands/` holds one module per command,
`options` what they share. Nothing in the core imports it."""
