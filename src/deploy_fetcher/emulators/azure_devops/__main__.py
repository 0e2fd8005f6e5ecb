"""``python -m deploy_fetcher.emulators.azure_devops --host 127.0.0.1 --port 0 --token T --scenario demo``."""

from __future__ import annotations

import argparse

from deploy_fetcher.emulators._server import serve_forever
from deploy_fetcher.emulators.azure_devops.server import AzureDevOpsEmulator


def main(argv: list[str] | None = None) -> None:
    """Serve the emulator in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(description="Azure DevOps emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="emulator-token")
    parser.add_argument("--scenario", default="demo", choices=["demo", "bench", "empty"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    emulator = AzureDevOpsEmulator(
        args.host, args.port, token=args.token, scenario=args.scenario, seed=args.seed
    )
    serve_forever(
        emulator, banner=f"Azure DevOps emulator (organization {emulator.scenario.organization})"
    )


if __name__ == "__main__":
    main()
