"""Performance: benchmarks written to Parquet, and checks that the speed options leave results alone."""
