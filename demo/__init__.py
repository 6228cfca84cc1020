"""A small demo application that exposes the specs' metrics and can inject faults."""
