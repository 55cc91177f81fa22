"""B4: the share of the signal wiring in place, pay and ship, and of the signals' dispatch alone."""

from bench.harness import inproc, log


def b4_signals(env: dict, out: dict) -> None:
    """Measured in a process of its own (`bench.inproc signals`), against the bench database."""
    out["B4"] = inproc(env, "signals")
    log(f"B4: {out['B4']}")
