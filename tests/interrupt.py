"""Start a command that a test will interrupt with SIGINT, as Ctrl-C in a terminal would.

A shell without job control (a script, a CI runner) starts a background job (`cmd &`) with SIGINT ignored,
and every process below it inherits that: Python then installs no KeyboardInterrupt handler, the test's
SIGINT is lost and the command runs to the end (exit 0, not 130). The tests' children get SIGINT's default
back, so what they check does not depend on how the test run itself was started."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """`preexec_fn` for subprocess.Popen: SIGINT as a terminal delivers it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
