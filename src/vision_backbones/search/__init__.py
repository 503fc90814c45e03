"""Neural architecture search over the registered families: spaces, strategies, evaluators (models never import it)."""
