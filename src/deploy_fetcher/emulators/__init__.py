"""Local emulators of the CI systems and the Deployment Dashboard, for tests, benchmarks and the demo."""
