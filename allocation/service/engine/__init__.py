"""The allocation engine: the domain's `Product.allocate_quantities` applied to every open line
of the night, a set of whole skus at a time (skus never share a batch, so each sku is
independent).

- `columns`: the default, `allocate_columns`, the night over integer columns in slices of whole
  skus, in this process;
- `by_chunks`: `allocate_candidates`, the night in chunks of skus, in this process or with helper
  processes beside it; `scheduling`: the loop that shares the chunks with workers (the helpers,
  or the Dask runner's shards in `allocation.flows.sharding`); `chunk_decision`: the decision of one
  chunk, wherever it runs;
- `sources`: the `Columns` and `Candidates` the engine reads the lines from and records the
  placements to.
"""
