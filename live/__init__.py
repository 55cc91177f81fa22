"""Live updates over WebSocket: customers' orders, product availability, the staff's shop.

The top layer beside the storefront and the back office: its receivers hear the signals of the
apps below and push what changed, after the commit, through the channel layer to the sockets
(`live.consumers`). Pushes are best-effort; each socket's snapshot is the truth (README "Live
updates").
"""
