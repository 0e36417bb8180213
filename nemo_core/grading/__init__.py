"""Grading one action at one decision point: actions, the reward rules, the keyword and LLM graders, the request a
model receives, and `grade` (grade one action, the `Breakdown`). Imports only `data` and `base`."""
