"""JSON schemas shipped with provscan (certificate predicate, statement, JSON report)."""
