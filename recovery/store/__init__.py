"""Persistence: the SQLAlchemy engine and session helpers, the mapped models, audit rows and the outbox."""
