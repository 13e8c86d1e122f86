"""Data: synthetic degradations, image I/O, the Parquet index, the paired torch dataset, the registry of real
benchmarks with its layout parsers, downloads and archive extraction. Never imports training or evaluation."""
