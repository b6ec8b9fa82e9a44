"""One module a dataset, each registering a :class:`bench.data.registry.DatasetSource`
(``bench.data.registry`` imports every module here)."""
