"""Graph passes over the imported Relax module, one per file; ``pipeline`` composes them."""
