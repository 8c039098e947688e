"""Tests of the benchmark harness (`make bench-test`), kept out of `make test`: they guard the
measuring tools, not a promise of the pipeline."""
