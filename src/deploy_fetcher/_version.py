"""The single place the version lives (read by the build and by ``fetcher --version``)."""

__version__ = "0.1.0"
