"""The toolkit every app may import: set-based SQL writes, admin bases, retry policies, the cache
backend, and what more than one door needs from a request (JSON parsing, the client's address,
throttles). It imports no app, so it sits below all of them."""
