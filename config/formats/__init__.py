"""Django's date formats for the back office (FORMAT_MODULE_PATH), so the admin's own columns read
as billing.documents.formats does: days "November 1, 2026"; instants with their zone named
("Nov. 30, 2026, 16:31 UTC": the admin's columns are in the server's time zone, UTC, while
customer-facing pages show the customer's)."""
