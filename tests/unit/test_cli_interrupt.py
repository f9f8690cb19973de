"""Ctrl-C while a command follows (`logs -f`) sets a flag that its loop checks between requests,
rather than raising inside one; outside the block, Ctrl-C raises as usual."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from chainyard.cli.interrupt import deferred_interrupt

_CHILD = textwrap.dedent(
    """
    import sys, time
    from chainyard.cli.interrupt import deferred_interrupt
    with deferred_interrupt(enabled=sys.argv[1] == "on") as stop:
        print("ready", flush=True)
        # Busy, as inside a request: the signal must not raise here.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            pass
        print("request done", flush=True)
        print("stopped" if stop.wait(60) else "timed out", flush=True)
    """
)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupted_child(mode: str) -> tuple[int, str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal, whatever this test runs under (a background job ignores SIGINT).
        preexec_fn=_default_sigint,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGINT)
    out, _err = child.communicate(timeout=30)
    return child.returncode, out


def test_ctrl_c_lets_the_work_under_way_finish_then_ends_the_wait() -> None:
    code, out = _interrupted_child("on")
    assert code == 0
    assert out.split() == ["request", "done", "stopped"]


def test_without_it_ctrl_c_raises_where_the_program_is() -> None:
    code, out = _interrupted_child("off")
    assert code != 0
    assert "request done" not in out


def test_the_previous_handler_comes_back() -> None:
    # Python's own handler, as in a terminal: a run in the background inherits SIGINT ignored,
    # which deferred_interrupt rightly keeps (the next test).
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with deferred_interrupt() as stop:
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
            assert not stop.wait(0)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)


def test_a_sigint_ignored_from_the_start_stays_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred_interrupt():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
