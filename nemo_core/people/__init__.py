"""What people do with the workbench: attempts from the Try panel, human baseline campaigns and their
statistics, the grader audit, and what the admin passphrase guards. Imports only `runs` and the layers below."""
