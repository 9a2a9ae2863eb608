"""Benchmarks that print figures (load test of the HTTP service, batch CLI throughput). They never assert timings."""
