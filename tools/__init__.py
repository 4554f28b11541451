"""Release tooling of the project (not benchmarks): ``python -m tools.ship_weights`` ships trained weights."""
