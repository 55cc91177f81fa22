"""The toolkit every app may import: set-based SQL writes, admin bases, retry policies, the cache
backend. It imports no app, so it sits below all of them."""
