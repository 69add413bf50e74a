"""Apache Airflow provider for BPM systems.

Kept import-free on purpose: DAG files import from this package while the scheduler parses them.
"""

__version__ = "0.1.0"
