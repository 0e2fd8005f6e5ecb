"""The Deployment Dashboard emulator (``python -m deploy_fetcher.emulators.dashboard``)."""

from deploy_fetcher.emulators.dashboard._contract import FieldError, validate
from deploy_fetcher.emulators.dashboard._control import ControlEvent, ControlReport
from deploy_fetcher.emulators.dashboard._emulator import DashboardEmulator

__all__ = ["ControlEvent", "ControlReport", "DashboardEmulator", "FieldError", "validate"]
