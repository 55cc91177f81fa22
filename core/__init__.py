"""The toolkit every app may import: SQL writes, admin bases, retries, cache, request helpers.

Request helpers are what more than one door needs: JSON parsing, the client's address, the
log-in throttles, a password validator. It imports no app, so it sits below all of them.
"""
