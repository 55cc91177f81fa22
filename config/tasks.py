from celery import shared_task


@shared_task(name="stockwire.ping", ignore_result=False)
def ping() -> str:
    """Answer "pong": lets an operator (and the test suite) see that a worker runs tasks."""
    return "pong"
