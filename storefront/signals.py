"""The storefront is the top layer: nothing above it listens, so it sends no signals."""
