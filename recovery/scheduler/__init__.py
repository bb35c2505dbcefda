"""The scheduler process: its jobs, started by `flask scheduler`."""
