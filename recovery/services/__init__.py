"""Use-cases: each takes a session and `now`, checks, writes and audits. Routes, the CLI and the scheduler
call these; nothing here knows about Flask requests."""
