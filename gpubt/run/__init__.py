"""The batch loop and what it owns: setup (config → dataset and strategies), loop (the local executor), sharded
(executor=dask), results (parts on disk), checkpoint, monitor."""
