"""Runs: many graded predictions stored together, their failure taxonomy and their analysis; the file grader,
the model runner and uploads. Imports only `grading`, `data` and `base`."""
