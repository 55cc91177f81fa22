"""Who is acting right now: the request's user, or "system" for tasks and commands.

A context variable rather than a thread-local so it is right under ASGI as well as WSGI.
"""

from contextvars import ContextVar

current_actor: ContextVar = ContextVar("audit_actor", default=None)
