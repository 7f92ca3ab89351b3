"""ingester-capture collector: from capture bundle to diagnosis."""
