"""Cross-dataset evaluation: metrics, the streaming evaluator and the report writer."""
