"""Local emulators of the CI systems and the Deployment Dashboard, for tests, benchmarks and the demo."""

from deploy_fetcher.emulators._server import EmulatorServer, Fault

__all__ = ["EmulatorServer", "Fault"]
