"""The outbox reacts to no signal: it is infrastructure that other apps call."""
