"""The generic webhook sink: the canonical event as JSON to any URL, optionally HMAC-signed."""

from deploy_fetcher.sinks.webhook.adapter import WebhookSink
from deploy_fetcher.sinks.webhook.config import WebhookConfig
from deploy_fetcher.sinks.webhook.signature import SIGNATURE_HEADER, sign, verify

__all__ = ["SIGNATURE_HEADER", "WebhookConfig", "WebhookSink", "sign", "verify"]
