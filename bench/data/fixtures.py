"""Old home of the fixture generators, now :mod:`bench.testing.fixtures` (issue 10): kept while
scripts and in-flight tests still import ``bench.data.fixtures``. New code imports bench.testing."""

from bench.testing.fixtures import make_fracatlas, make_mura, synthetic_radiograph  # noqa: F401
