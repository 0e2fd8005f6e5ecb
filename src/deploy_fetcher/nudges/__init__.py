"""Webhook nudges: CI systems say a target changed, and the fetcher polls that target now.

A nudge is a hint, never data: polling stays the source of truth, so a nudge that is lost, late,
forged or repeated changes nothing but when (and, bounded per target, how often) a target is polled.
"""

from deploy_fetcher.nudges._app import MAX_CONCURRENT, PREFIX, NudgeApp, Nudger
from deploy_fetcher.nudges._identify import Ignored, Named, identify
from deploy_fetcher.nudges._verify import Verifier, verifiers

__all__ = [
    "MAX_CONCURRENT",
    "PREFIX",
    "Ignored",
    "Named",
    "NudgeApp",
    "Nudger",
    "Verifier",
    "identify",
    "verifiers",
]
