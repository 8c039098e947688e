"""Benchmarks of the nightly pipeline against the I/O floor (`make bench`, never `make test`)."""
