"""Pure domain: standard library and other domain modules only; no clock, no database, no network.
Everything here takes explicit inputs, `now` included."""
