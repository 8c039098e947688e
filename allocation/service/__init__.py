"""The service layer: the night's steps, the manifest rules, rollback, the pre-flight checks and
the allocation engine. It drives the domain through the adapters of `allocation.io`; it never
imports Prefect (only the entrypoints do).
"""
