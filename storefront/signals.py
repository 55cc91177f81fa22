"""What the storefront announces. It is the top layer: only its sibling `live` listens.

token_revoked(user_id)
    Sent by `services.token_revoke` inside its transaction when a token was revoked: the
    user's sockets opened with that token close at once (`live.receivers`), not at the next
    ping.
"""

from django.dispatch import Signal

token_revoked = Signal()
