"""The realtime side: board WebSockets, their rooms, and the process around them.

Read in this order (docs/architecture.md walks one op through them):
`consumer` (ASGI events in, frames out), `session` (one connection's state and
its one exit), `outbox` (what one connection is sent, bounded and in order),
`room` (one board's connections and batches), `process` (the channel layer,
the committer, the upkeep, and every database call), `routing`.
"""
