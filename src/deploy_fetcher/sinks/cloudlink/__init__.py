"""The Cloudlink sink: ``POST {url}/deploys`` with a bearer key, successful deploys only (seed 000)."""

from deploy_fetcher.sinks.cloudlink.adapter import CloudlinkSink
from deploy_fetcher.sinks.cloudlink.config import CloudlinkConfig

__all__ = ["CloudlinkConfig", "CloudlinkSink"]
