"""The performance benchmark suite behind `python manage.py benchmark` (DESIGN §5).

It measures the figures the design promises at scale, on a throw-away PostgreSQL database
(`<name>_bench` on the server of DATABASE_URL) that it creates, fills and drops, so it never
touches real data. Beside each wall-clock figure it gives the CPU behind it (per request, per
event, per customer), since the machine may be shared, and at several sizes the growth curve:

- `ingest`: HTTP ingestion against the real web server, granian (single events, batches of 100 and
  1,000) beside a raw PostgreSQL COPY of as many rows into a table of the same shape.
- `unique`: unique_count over the maintained DistinctValue set beside COUNT(DISTINCT …) over
  the raw events, for one customer-month of millions of events, at three sizes.
- `usage`: current_usage latency over HTTP while batch ingestion runs for another customer, at
  the same three sizes.
- `close`: closing the periods of a growing number of customers in a child process with its
  workers: wall time, CPU (the command's and the database's) and peak RSS.

Modules: `database` (the bench database's lifecycle), `data` (bulk SQL builders), `prepare`
(what each section needs), `server` (granian), `loadgen` (the HTTP load generator, run as its
own process), `loads` (running it, metered), `cpu` (CPU from /proc), `child` (measurements that
need Django against the bench database, run as their own process), one module per section
(`sections` for unique, `ingest`, `usage`, `close`), `growth` (the curves), `report` (the table
and benchmark-report.json).
"""
