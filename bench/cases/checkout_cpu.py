"""CPU: what one order costs the web tier in-process, per variant, beside the bare view and the
naive ORM checkout, and the latency the relay adds to an e-mail (`bench/checkout_cpu.py`)."""

from bench import stack
from bench.harness import REFERENCE_DB, inproc, log


def checkout_cpu(env: dict, out: dict) -> None:
    """Measured in a process of its own (`bench.inproc checkout_cpu`) on the bench shop, with the
    reference tables loaded for the naive checkout."""
    stack.recreate_database(REFERENCE_DB)
    stack.psql(REFERENCE_DB, file=stack.REFERENCE / "schema.sql")
    stack.psql(REFERENCE_DB, file=stack.REFERENCE / "reset.sql")
    try:
        out["CPU"] = inproc(env, "checkout_cpu")
    finally:
        stack.drop_database(REFERENCE_DB)
    for variant, figures in out["CPU"]["variants"].items():
        log(
            f"CPU {variant:34} web {figures['web_cpu_ms']:5.2f} ms, PostgreSQL "
            f"{figures['pg_cpu_ms']:5.2f} ms, relay {figures['relay_cpu_ms']:4.2f} ms per request; "
            f"{figures.get('x_bare', '–')}× bare, {figures.get('x_naive', '–')}× naive"
        )
    if "wake_latency" in out["CPU"]:
        log(f"CPU wake latency: {out['CPU']['wake_latency']}")
