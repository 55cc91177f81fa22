"""The toolkit every app may import: set-based SQL writes, admin bases, retry policies, the cache
backend, and what more than one door needs (JSON parsing, the client's address, throttles, a
password validator). It imports no app, so it sits below all of them."""
