"""The performance benchmark suite behind `python manage.py benchmark` (DESIGN §5).

It measures the figures the design promises at scale, on a throw-away PostgreSQL database
(`<name>_bench` on the server of DATABASE_URL) that it creates, fills and drops, so it never
touches real data:

- `ingest`: HTTP ingestion against a real gunicorn process (single events, batches of 100 and
  1,000) beside a raw PostgreSQL COPY of as many rows into a table of the same shape.
- `unique`: unique_count over the maintained DistinctValue set beside COUNT(DISTINCT …) over
  the raw events, for one customer-month of millions of events.
- `usage`: current_usage latency over HTTP while batch ingestion runs for another customer.
- `close`: closing the periods of thousands of customers in a child process: wall time and
  the child's peak RSS.

Modules: `database` (the bench database's lifecycle), `data` (bulk SQL builders), `server`
(gunicorn), `loadgen` (the HTTP load generator, run as its own process), `child` (measurements
that need Django against the bench database, run as their own process), `scenarios` (one
function per section), `report` (the table and benchmark-report.json).
"""
