"""The send pipeline for the outbox: claim due rows, re-check, render, send, record the result."""
