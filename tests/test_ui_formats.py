"""The one number format (ui/formats.py, issue 19): what every page and export writes for rewards, CIs, counts,
times, durations and a missing value, and the table style that gives st.dataframe the same."""

from __future__ import annotations

import pandas as pd

from ui import formats as fmt


def test_rewards_cis_counts_and_plurals():
    assert fmt.reward(0.7449) == "0.745" and fmt.reward(0.35) == "0.350" and fmt.reward(None) == "—"
    assert fmt.reward(0.5, signed=True) == "+0.500" and fmt.reward(-0.25, signed=True) == "-0.250"
    assert fmt.ci(0.55, 0.7) == "[0.550, 0.700]" and fmt.ci(None, 0.7) == "—"
    assert fmt.count(6497) == "6,497" and fmt.count(None) == "—"
    assert fmt.plural(1, "decision point") == "1 decision point"
    assert fmt.plural(6497, "decision point") == "6,497 decision points"
    assert fmt.plural(1, "skip") == "1 skip" and fmt.plural(2, "match", "matches") == "2 matches"


def test_times_and_durations():
    assert fmt.when("2026-11-30T03:59:12.123456+00:00") == "2026-11-30 03:59 UTC"
    assert fmt.when("2026-11-30T05:59:12+02:00") == "2026-11-30 03:59 UTC"  # shown in UTC
    assert fmt.when(None) == "—" and fmt.when("yesterday") == "yesterday"
    assert fmt.seconds(17.412691354751587) == "17.4 s" and fmt.seconds(None) == "—"


def test_table_style_formats_cells_but_keeps_values():
    frame = pd.DataFrame({"item": [27, 133328], "keyword": [0.06189, 1.0], "llm": [None, 0.7],
                          "kind": ["reference", None], "human": [None, None]})
    styled = fmt.table(frame)
    shown = styled.to_string().splitlines()[1:]
    assert shown[0].split() == ["0", "27", "0.062", "—", "reference", "—"]
    assert shown[1].split() == ["1", "133,328", "1.000", "0.700", "—", "—"]
    # Streamlit draws a null as "None" whatever the style: text columns get "—" as data; numbers stay numbers
    assert styled.data["kind"].tolist() == ["reference", "—"] and styled.data["human"].tolist() == ["—", "—"]
    assert styled.data["keyword"].tolist() == [0.06189, 1.0] and styled.data["item"].dtype.kind == "i"
    assert frame["kind"].isna().tolist() == [False, True]  # the caller's frame is left as it was
