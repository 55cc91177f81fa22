"""Stockwire's benchmarks (`make bench`): a production-like stack on loopback,
driven from outside.

See bench/README.md.
"""
