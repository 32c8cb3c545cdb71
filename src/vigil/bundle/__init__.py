"""Model bundles: flavors, signatures, baseline profiles."""
