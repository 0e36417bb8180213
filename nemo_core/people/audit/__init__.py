"""The grader audit (issue 8): how well the keyword grader agrees with the LLM grader on message tasks, and
both with people. By job, each module importing only the ones before it in this list:

- `sets`: audit sets and their items (what the tables hold, the seeded order, the counts a page shows);
- `build`: the three ways to fill a set (a run's message replies, a campaign's human answers, calibration
  candidates that need no model), each item keyword-scored as it is added;
- `grading`: the LLM grader over a set's unscored items on the one executor (`runs.executor`): concurrent,
  stoppable, resumable, with `estimate` saying beforehand how many API calls that takes; and the per-set
  control that lets one session grade a set while another can stop it;
- `scores`: the scored table (every rater's score of every item) and people's blind judgements;
- `agreement`: the figures (pure, tested on hand-checked tables);
- `export`: the table as CSV.

Keyword scores are F1 in [0, 1]; LLM scores are stored as the model's integer 0-10 and compared as /10.
Decision points whose reference is empty are left out: both graders' scores are meaningless there.
"""
